import TesseraKernels
BLASRuntime.relaunchWithFastCoreIfNeeded()
print(BLASRuntime.coreName)
