// Opus, Ogg Opus, WAV and audio media.
