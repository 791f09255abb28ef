"""Client helpers for smartpush-gateway; the generated stubs live in `smartpush.gateway.v1`."""
