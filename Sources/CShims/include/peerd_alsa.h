#ifndef PEERD_ALSA_SHIM_H
#define PEERD_ALSA_SHIM_H
// Installs an ALSA error handler that discards alsa-lib's own stderr messages
// (peerd reports device errors itself, naming the device).
void peerd_alsa_silence_errors(void);
#endif
