// Declarations only; libFuzzer provides the symbols in fuzz builds.
