/// Whoever uses the agent speaks its control protocol (requests, replies, task records).
@_exported import RoleMeshControl
