"""SmartApp API structures: exact wire JSON <-> typed protos, and the runtime permission messages."""
