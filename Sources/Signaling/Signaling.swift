// The Signaling module.
