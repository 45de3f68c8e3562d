// mDNS one-shot resolver (RFC 6762).
