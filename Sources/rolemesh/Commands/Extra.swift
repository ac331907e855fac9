import ArgumentParser

/// Commands added by later parts (routing, tasks).
let extraCommands: [ParsableCommand.Type] = []
