// The DTLS module.
