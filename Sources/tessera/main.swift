// Entry point: first make sure OpenBLAS runs its fastest kernels (which may re-execute the
// process once, before anything else happens), keep freed buffers for reuse, then hand over
// to the command parser.
import TesseraKernels

BLASRuntime.relaunchWithFastCoreIfNeeded()
MemoryRuntime.keepFreedMemory()
Tessera.main()
