package tracker

// Helpers of the package's tests, for its external tests (package
// tracker_test), which may import packages that import this one.
var (
	BenchPeer = benchPeer
	CPUTime   = processCPU
)
