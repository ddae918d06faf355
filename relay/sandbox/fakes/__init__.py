"""The loopback fakes; `_http` holds the machinery they share (FakeHTTPServer, FakeApi)."""
