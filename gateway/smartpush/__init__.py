"""The SmartPush REST client: wire mapping, tokens, HTTP calls and answer classification."""
