package scan

// SetSequentialWalk turns the decompression pipeline (pipe.go) off or on
// for a test; it returns the previous setting's restorer.
func SetSequentialWalk(v bool) (restore func()) {
	old := sequentialWalk
	sequentialWalk = v
	return func() { sequentialWalk = old }
}

// StreamBytes is what one layer stream is charged (Memory).
const StreamBytes = streamBytes

// ReadAhead is the most of a compressed stream read beyond what the
// decompressor has asked for: the source pipe's chunks and the read buffer.
const ReadAhead = pipeChunks*sourceChunkSize + bufSize

// ZstdWindow exposes zstdWindow for a test of a frame header.
var ZstdWindow = zstdWindow
