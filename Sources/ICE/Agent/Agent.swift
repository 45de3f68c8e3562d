// ICE agent (RFC 8445) sans-IO core.
