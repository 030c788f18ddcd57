// Declarations only (include/CLibFuzzer.h): LLVMFuzzerRunDriver is defined by libFuzzer's
// runtime, which `-sanitize=fuzzer` links. SwiftPM wants one source file per C target.
#include "CLibFuzzer.h"
