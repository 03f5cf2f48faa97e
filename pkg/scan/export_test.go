package scan

// SetSequentialWalk turns the decompression pipeline (pipe.go) off or on
// for a test; it returns the previous setting's restorer.
func SetSequentialWalk(v bool) (restore func()) {
	old := sequentialWalk
	sequentialWalk = v
	return func() { sequentialWalk = old }
}
