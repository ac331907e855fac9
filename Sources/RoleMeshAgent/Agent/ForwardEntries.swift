import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore

/// node.toml's `forward = ["llm/api", "media/web=8096"]`: listeners the agent keeps open while it
/// runs. One whose port is taken (or whose service's port no node has said yet) is logged, shown
/// by `doctor` and `status`, and tried again every 10 s; it stops nothing else.
extension Agent {
    func openForwards(_ view: [MemberSnapshot]) {
        let now = Clock.now()
        for spec in config.forwards {
            if let id = services.forwardIDs[spec.service], services.listeners[id]?.isOpen == true { continue }
            guard now - (services.forwardTriedAt[spec.service] ?? .min / 2) >= ServicePlane.forwardRetryMs else { continue }
            services.forwardTriedAt[spec.service] = now
            let port = spec.port ?? servicePort(spec.service).flatMap { UInt16(exactly: $0) }
            let id = services.forwardIDs[spec.service] ?? services.nextListener
            if services.forwardIDs[spec.service] == nil { services.nextListener += 1; services.forwardIDs[spec.service] = id }
            guard let port, let address = WireAddress(host: spec.host, port: port) else {
                let l = ServiceListener(service: spec.service, address: WireAddress(host: spec.host, port: 0) ?? WireAddress(ip: [127, 0, 0, 1], port: 0))
                l.error = port == nil ? "no node offering \(spec.service) has said its port yet" : "\(spec.host) is not an IP address"
                services.listeners[id] = l
                continue
            }
            let l = ServiceListener(service: spec.service, address: address)
            if openListener(l, id: id) != nil {
                Log.info("forwarding \(l.listenText) -> \(spec.service)")
            } else {
                services.listeners[id] = l
                Log.warn("forward \(spec.service): \(l.error ?? "cannot listen"); trying again every \(ServicePlane.forwardRetryMs / 1000) s")
            }
        }
    }
}
