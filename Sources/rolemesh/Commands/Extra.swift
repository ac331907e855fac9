import ArgumentParser

/// Commands for routing and tasks.
let extraCommands: [ParsableCommand.Type] = [Route.self, Roles.self, Backup.self, Signal.self, Drain.self, Undrain.self,
                                             Submit.self, Tasks.self, Cancel.self, Logs.self, Schedules.self,
                                             Services.self, Connect.self]

/// Running it as a service, and finding out what is wrong.
let serviceCommands: [ParsableCommand.Type] = [Service.self, DoctorCommand.self]
