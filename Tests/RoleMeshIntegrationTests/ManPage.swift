/// docs/rolemesh.1 as swift-argument-parser's generate-manual writes it (mdoc): each command is
/// `.It Em NAME` followed by a `.Bl` list of its flags (`.It Fl -name`) and subcommands.
struct ManPage {
    /// command path → its long flags.
    var commands: [[String]: Set<String>] = [:]

    static func parse(_ mdoc: String) -> ManPage {
        var page = ManPage()
        page.commands[[]] = []
        var path: [String] = []         // the command whose list we are in
        var lastItem: [String]?         // the latest `.It Em`, which a following `.Bl` belongs to
        var lists: [[String]] = []      // owners of the open lists
        for line in mdoc.split(separator: "\n") {
            if line.hasPrefix(".Bl") {
                // The first list (DESCRIPTION) belongs to the root.
                lists.append(lastItem ?? [])
                path = lists.last!
                lastItem = nil
            } else if line.hasPrefix(".El") {
                _ = lists.popLast()
                path = lists.last ?? []
                lastItem = nil
            } else if line.hasPrefix(".It Em ") {
                let item = path + [String(line.dropFirst(7))]
                page.commands[item] = []
                lastItem = item
            } else if line.hasPrefix(".It Fl ") {
                // `.It Fl -listen Ar listen`, `.It Fl h , -help`: mdoc's `Fl -x` is `--x`.
                for word in line.split(separator: " ") where word.hasPrefix("-") && word.count > 1 {
                    page.commands[path, default: []].insert("-" + word)
                }
            }
        }
        return page
    }
}
