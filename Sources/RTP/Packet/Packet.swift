// RTP and RTCP wire formats (RFC 3550, 3611, 4585, 5506, 8285).
