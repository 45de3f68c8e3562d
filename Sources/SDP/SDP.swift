// The SDP module.
