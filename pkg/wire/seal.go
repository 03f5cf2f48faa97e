package wire

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	customsv1 "github.com/customs-scan/customs/proto/gen/go/customs/v1"
)

// Registry credentials that arrive with a request (Harbor hands the
// adapter a per-scan robot as an Authorization header value) travel to the
// scanner inside the ScanJob, sealed: the jobs stream, its replicas, dead
// letters and anything that copies a job only ever hold ciphertext.
//
// A sealed value is
//
//	0x01 | nonce (12 bytes) | AES-256-GCM(expiry (8 bytes, Unix seconds, big endian) | authorization)
//
// under a key derived (HKDF-SHA256) from CUSTOMS_JOB_KEY, with the job's
// id and event id as additional data: it opens only inside the job it was
// made for, and not after its expiry (Harbor deletes the robot when its
// scan job ends, so an old value is useless anyway).

const (
	sealVersion = 0x01
	// jobKeyInfo separates this key from anything else derived from the
	// same secret.
	jobKeyInfo = "customs/v1 scan job registry authorization"
)

// Errors of JobKey.Open. Their messages never contain the value.
var (
	ErrSealedExpired = errors.New("sealed registry credentials have expired")
	ErrSealedOpen    = errors.New("sealed registry credentials do not open with this CUSTOMS_JOB_KEY " +
		"(another key, or not this job's)")
)

// JobKey seals and opens the registry credentials of scan jobs. The adapter
// that receives credentials and every scanner hold the same secret.
type JobKey struct{ aead cipher.AEAD }

// NewJobKey derives the sealing key from secret (at least MinKeyBytes).
func NewJobKey(secret string) (*JobKey, error) {
	if len(secret) < MinKeyBytes {
		return nil, fmt.Errorf("job key is %d bytes; at least %d are needed", len(secret), MinKeyBytes)
	}
	key, err := hkdf.Key(sha256.New, []byte(secret), nil, jobKeyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("derive job key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("job key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("job key: %w", err)
	}
	return &JobKey{aead: aead}, nil
}

// sealedAD binds a sealed value to its job: length-prefixed, so no two
// (job id, event id) pairs share additional data.
func sealedAD(job *customsv1.ScanJob) []byte {
	var b []byte
	for _, s := range []string{"customs-sealed-authorization/v1", job.GetJobId(), job.GetEventId()} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

// Seal puts authorization (an HTTP Authorization header value) into job,
// valid until expires. Set the job's id and event id first: they are
// bound to the value.
func (k *JobKey) Seal(job *customsv1.ScanJob, authorization string, expires time.Time) error {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return fmt.Errorf("seal registry credentials: %w", err)
	}
	plain := binary.BigEndian.AppendUint64(nil, uint64(expires.Unix()))
	plain = append(plain, authorization...)
	out := append([]byte{sealVersion}, nonce...)
	job.SealedAuthorization = k.aead.Seal(out, nonce, plain, sealedAD(job))
	clear(plain)
	return nil
}

// Open returns the authorization sealed into job; ErrSealedOpen when it
// was sealed under another key or for another job (or was altered),
// ErrSealedExpired after its expiry.
func (k *JobKey) Open(job *customsv1.ScanJob, now time.Time) (string, error) {
	sealed := job.GetSealedAuthorization()
	ns := k.aead.NonceSize()
	if len(sealed) < 1+ns+k.aead.Overhead()+8 || sealed[0] != sealVersion {
		return "", ErrSealedOpen
	}
	plain, err := k.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], sealedAD(job))
	if err != nil {
		return "", ErrSealedOpen
	}
	if expires := time.Unix(int64(binary.BigEndian.Uint64(plain[:8])), 0); now.After(expires) {
		return "", ErrSealedExpired
	}
	return string(plain[8:]), nil
}
