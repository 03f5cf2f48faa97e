package embedded

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3bolt"
	bolt "go.etcd.io/bbolt"
)

// S3 is a local S3-compatible server (gofakes3 on a bbolt file), served over
// real HTTP so the results service uses aws-sdk-go-v2 exactly as against AWS.
// It accepts only requests signed (SigV4) with the key pair generated at
// start, so a local process cannot read or overwrite reports anonymously.
type S3 struct {
	URL string
	// AccessKeyID and SecretAccessKey are the only credentials accepted.
	AccessKeyID, SecretAccessKey string
	srv                          *http.Server
	db                           *bolt.DB
}

// StartS3 serves the S3 API on addr with objects stored in file, for
// clients holding the given key pair.
func StartS3(addr, file, accessKeyID, secretAccessKey string) (*S3, error) {
	if accessKeyID == "" || secretAccessKey == "" {
		return nil, errors.New("s3: an access key pair is required")
	}
	db, err := bolt.Open(file, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("s3 backend %s: %w", file, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("s3 listen %s: %w", addr, err)
	}
	faker := gofakes3.New(s3bolt.New(db), gofakes3.WithLogger(gofakes3.DiscardLog()))
	creds := aws.Credentials{AccessKeyID: accessKeyID, SecretAccessKey: secretAccessKey}
	srv := &http.Server{Handler: requireSigV4(creds, faker.Server()), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // the listener was closed under us; Close reports nothing more useful
		}
	}()
	return &S3{URL: "http://" + ln.Addr().String(), AccessKeyID: accessKeyID, SecretAccessKey: secretAccessKey, srv: srv, db: db}, nil
}

// Close stops serving and closes the database.
func (s *S3) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	return errors.Join(err, s.db.Close())
}
