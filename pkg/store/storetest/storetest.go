// Package storetest runs a real S3-compatible server (gofakes3, in memory)
// over HTTP on loopback, so tests exercise aws-sdk-go-v2 end to end.
package storetest

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/customs-scan/customs/pkg/store"
)

// Server is a running S3 endpoint.
type Server struct {
	URL string
	srv *httptest.Server
}

// Start starts the server; it stops when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	faker := gofakes3.New(s3mem.New())
	srv := httptest.NewServer(faker.Server())
	tb.Cleanup(srv.Close)
	return &Server{URL: srv.URL, srv: srv}
}

// Config returns a store config for bucket on this server.
func (s *Server) Config(bucket string) store.S3Config {
	return store.S3Config{
		Bucket: bucket, Region: "us-east-1", Endpoint: s.URL, PathStyle: true,
		AccessKeyID: "test", SecretAccessKey: "test", CreateBucket: true,
	}
}

// Bucket returns a client for bucket, creating it.
func (s *Server) Bucket(tb testing.TB, bucket string) *store.S3 {
	tb.Helper()
	b, err := store.NewS3(context.Background(), s.Config(bucket), nil)
	if err != nil {
		tb.Fatalf("storetest: %v", err)
	}
	return b
}
