"""Public testing helpers: a real Envoy process (:mod:`.envoy`), a fake ADS client (:mod:`.fake_client`),
hand-built resources (:mod:`.resources`) and a standalone xDS server process (:mod:`.server`)."""
