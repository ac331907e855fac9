import Foundation
import XCTest
import RoleMeshAgent

final class ServiceUnitTests: XCTestCase {
    func unit(_ manager: ServiceUnit.Manager = .systemd, system: Bool = false, dir: String = "/home/me/.rolemesh") -> ServiceUnit {
        ServiceUnit(manager: manager, system: system, node: "desk", binary: "/usr/local/bin/rolemesh", dir: dir,
                    user: system ? "me" : nil, home: "/home/me")
    }

    func lines(_ u: ServiceUnit) -> [String] { u.render().split(separator: "\n").map(String.init) }

    func testTheUserUnitRunsTheAgentWithItsDirectoryAndLeavesOnSIGTERM() {
        let l = lines(unit())
        for expected in ["ExecStart=/usr/local/bin/rolemesh agent --dir /home/me/.rolemesh", "Restart=on-failure",
                         "RestartPreventExitStatus=78", "KillSignal=SIGTERM", "KillMode=mixed", "StandardError=journal",
                         "WantedBy=default.target"] {
            XCTAssertTrue(l.contains(expected), "missing \(expected)")
        }
        XCTAssertFalse(l.contains { $0.hasPrefix("User=") || $0.contains("network-online") })
        XCTAssertEqual(unit().name, "rolemesh-desk.service")
    }

    func testTheSystemUnitNamesItsUserAndWaitsForTheNetwork() {
        let l = lines(unit(system: true))
        XCTAssertTrue(l.contains("User=me"))
        XCTAssertTrue(l.contains("After=network-online.target"))
        XCTAssertTrue(l.contains("WantedBy=multi-user.target"))
    }

    func testPathsWithSpacesAndSpecifiersAreTakenLiterally() {
        let l = lines(unit(dir: "/home/me/My Mesh/100%$HOME"))
        XCTAssertTrue(l.contains(#"ExecStart=/usr/local/bin/rolemesh agent --dir "/home/me/My Mesh/100%%$$HOME""#), "\(l)")
    }

    func testWhereTheFileGoes() {
        XCTAssertEqual(unit().folder(environment: [:]), "/home/me/.config/systemd/user")
        XCTAssertEqual(unit().folder(environment: ["XDG_CONFIG_HOME": "/cfg"]), "/cfg/systemd/user")
        XCTAssertEqual(unit().folder(environment: ["XDG_CONFIG_HOME": "relative"]), "/home/me/.config/systemd/user")
        XCTAssertEqual(unit(system: true).folder(environment: [:]), "/etc/systemd/system")
        XCTAssertEqual(unit(.launchd).folder(environment: [:]), "/home/me/Library/LaunchAgents")
        XCTAssertEqual(unit(.launchd, system: true).folder(environment: [:]), "/Library/LaunchDaemons")
    }

    func testEnableAndDisableCommandsAndTheirShellLine() {
        let u = unit()
        XCTAssertEqual(ServiceUnit.shellLine(u.enableCommands(path: "/x")),
                       "systemctl --user daemon-reload && systemctl --user enable --now rolemesh-desk.service")
        XCTAssertEqual(ServiceUnit.shellLine(unit(system: true).disableCommands), "systemctl disable --now rolemesh-desk.service")
        XCTAssertEqual(ServiceUnit.shellLine([["launchctl", "bootstrap", "gui/501", "/Users/me/My Agents/x.plist"]]),
                       "launchctl bootstrap gui/501 '/Users/me/My Agents/x.plist'")
    }

    func testTheLaunchdPlistIsAValidPropertyList() throws {
        let u = unit(.launchd, dir: "/Users/me/a&b <c>")
        let plist = try PropertyListSerialization.propertyList(from: Data(u.render().utf8), format: nil) as? [String: Any]
        XCTAssertEqual(plist?["Label"] as? String, "rolemesh.desk")
        XCTAssertEqual(plist?["ProgramArguments"] as? [String], ["/usr/local/bin/rolemesh", "agent", "--dir", "/Users/me/a&b <c>"])
        XCTAssertEqual(plist?["RunAtLoad"] as? Bool, true)
        XCTAssertEqual((plist?["KeepAlive"] as? [String: Any])?["SuccessfulExit"] as? Bool, false)
        XCTAssertNil(plist?["UserName"])
        let system = try PropertyListSerialization.propertyList(from: Data(unit(.launchd, system: true).render().utf8), format: nil) as? [String: Any]
        XCTAssertEqual(system?["UserName"] as? String, "me")
    }
}
