package vulndb

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ErrNoDatabase is returned by OpenFile when the file does not exist:
// callers report packages and say that vulnerabilities were not checked.
var ErrNoDatabase = errors.New("vulndb: no vulnerability database (run `customs db update`)")

// DefaultPath is <user cache dir>/customs/vulndb.gob.gz, where the customs
// commands keep the database unless told otherwise (they read CUSTOMS_DB;
// this package reads no environment variable).
func DefaultPath() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("vulndb: no user cache directory: %w", err)
	}
	return filepath.Join(dir, "customs", "vulndb.gob.gz"), nil
}

// OpenOptional is OpenFile for a database that may not exist yet (the
// default location): a missing file is no database (nil, nil).
func OpenOptional(path string) (*DB, error) {
	db, err := OpenFile(path)
	if errors.Is(err, ErrNoDatabase) {
		return nil, nil
	}
	return db, err
}

// OpenFile reads a database file written by WriteFile. A missing file is
// ErrNoDatabase.
func OpenFile(path string) (*DB, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist", ErrNoDatabase, path)
	}
	if err != nil {
		return nil, fmt.Errorf("vulndb: %w", err)
	}
	defer f.Close()
	db, err := Read(bufio.NewReaderSize(f, 1<<16))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return db, nil
}

// WriteFile writes the database atomically (temporary file, fsync,
// rename): a scanner reading the file while it is being updated sees the
// old or the new database, never half of one.
func (db *DB) WriteFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("vulndb: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".vulndb-*")
	if err != nil {
		return fmt.Errorf("vulndb: %w", err)
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriterSize(tmp, 1<<16)
	err = db.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("vulndb: write %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("vulndb: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("vulndb: %w", err)
	}
	return nil
}

// Bytes is the database as Write encodes it.
func (db *DB) Bytes() ([]byte, error) {
	var buf bytes.Buffer
	if err := db.Write(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// progressReader reports how many bytes were read so far.
type progressReader struct {
	r     io.Reader
	done  int64
	total int64
	fn    func(done, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if n > 0 || err == io.EOF {
		p.fn(p.done, p.total)
	}
	return n, err
}
