// libFuzzer's entry point for programs that have their own `main` (LLVM 11+), from
// compiler-rt/lib/fuzzer/FuzzerInterface.h. The harnesses need it because SwiftPM links
// every Swift executable with `--defsym main=<Module>_main`, which hides libFuzzer's own
// `main`; each harness's `@main` calls this instead (see FuzzSupport).
#ifndef HERALD_CLIBFUZZER_H
#define HERALD_CLIBFUZZER_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv,
                        int (*UserCb)(const uint8_t *Data, size_t Size));

#endif
