// Package store keeps report objects in S3-compatible storage.
package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// ErrNotFound is returned by Get for a key that does not exist.
var ErrNotFound = errors.New("object not found")

// Bucket is the storage the results service needs.
type Bucket interface {
	Put(ctx context.Context, key string, body []byte, contentType string) error
	Get(ctx context.Context, key string) ([]byte, error)
	// List returns up to limit keys under prefix in lexical order.
	List(ctx context.Context, prefix string, limit int) ([]string, error)
	// Ping checks the bucket is reachable (for readiness).
	Ping(ctx context.Context) error
}

// S3Config says where the bucket is. Empty AccessKeyID means the SDK's
// default credential chain (env, shared config, IAM role).
type S3Config struct {
	Bucket          string
	Region          string
	Endpoint        string // e.g. http://127.0.0.1:9000 for MinIO; empty for AWS
	PathStyle       bool   // required by most S3-compatible servers
	AccessKeyID     string
	SecretAccessKey string
	// CreateBucket creates the bucket when missing (dev and all-in-one).
	CreateBucket bool
	// ReadTimeout bounds one Get, List or Ping including the SDK's
	// retries; WriteTimeout one Put. A frozen server (accepts connections,
	// never answers) then costs a bounded wait, never a hung worker or API
	// request. Zero means 10 s and 60 s.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
}

// Connection-level bounds of the default HTTP client.
const (
	dialTimeout           = 5 * time.Second
	responseHeaderTimeout = 15 * time.Second
)

// S3 is a Bucket backed by aws-sdk-go-v2.
type S3 struct {
	client       *s3.Client
	bucket       string
	readTimeout  time.Duration
	writeTimeout time.Duration
}

var _ Bucket = (*S3)(nil)

// NewS3 builds the client and, if asked, creates the bucket.
func NewS3(ctx context.Context, cfg S3Config, httpClient *http.Client) (*S3, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3: bucket name is empty")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(cfg.Region),
		// Only checksum when an operation requires it: several S3-compatible
		// servers reject the SDK's default trailing checksums.
		awsconfig.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		awsconfig.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if cfg.AccessKeyID != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")))
	}
	if httpClient != nil {
		opts = append(opts, awsconfig.WithHTTPClient(httpClient))
	} else {
		opts = append(opts, awsconfig.WithHTTPClient(awshttp.NewBuildableClient().
			WithDialerOptions(func(d *net.Dialer) { d.Timeout = dialTimeout }).
			WithTransportOptions(func(t *http.Transport) {
				t.ResponseHeaderTimeout = responseHeaderTimeout
				t.TLSHandshakeTimeout = dialTimeout
			})))
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 10 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = time.Minute
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3: load aws config: %w", err)
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
	})
	b := &S3{client: client, bucket: cfg.Bucket, readTimeout: cfg.ReadTimeout, writeTimeout: cfg.WriteTimeout}
	if cfg.CreateBucket {
		if err := b.ensureBucket(ctx); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func (b *S3) ensureBucket(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.writeTimeout)
	defer cancel()
	if _, err := b.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &b.bucket}); err == nil {
		return nil
	}
	_, err := b.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &b.bucket})
	var owned *types.BucketAlreadyOwnedByYou
	var exists *types.BucketAlreadyExists
	if err != nil && !errors.As(err, &owned) && !errors.As(err, &exists) {
		return fmt.Errorf("s3: create bucket %s: %w", b.bucket, err)
	}
	return nil
}

// Put writes body under key, replacing any object there.
func (b *S3) Put(ctx context.Context, key string, body []byte, contentType string) error {
	ctx, cancel := context.WithTimeout(ctx, b.writeTimeout)
	defer cancel()
	_, err := b.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &b.bucket,
		Key:           &key,
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String(contentType),
	})
	if err != nil {
		return fmt.Errorf("s3: put %s: %w", key, err)
	}
	return nil
}

// Get reads the object at key; ErrNotFound when there is none.
func (b *S3) Get(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, b.readTimeout)
	defer cancel()
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: &key})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("s3: get %s: %w", key, ErrNotFound)
		}
		return nil, fmt.Errorf("s3: get %s: %w", key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("s3: read %s: %w", key, err)
	}
	return data, nil
}

// List returns up to limit keys under prefix, in lexical order.
func (b *S3) List(ctx context.Context, prefix string, limit int) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.readTimeout)
	defer cancel()
	var keys []string
	p := s3.NewListObjectsV2Paginator(b.client, &s3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: &prefix})
	for p.HasMorePages() && (limit <= 0 || len(keys) < limit) {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("s3: list %s: %w", prefix, err)
		}
		for _, o := range page.Contents {
			if limit > 0 && len(keys) >= limit {
				break
			}
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys, nil
}

// ListAfter returns up to limit keys under prefix that sort after after
// (S3's StartAfter), in lexical order: one page of a long listing without
// reading the keys before it.
func (b *S3) ListAfter(ctx context.Context, prefix, after string, limit int) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.readTimeout)
	defer cancel()
	in := &s3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: &prefix}
	if after != "" {
		in.StartAfter = &after
	}
	if limit > 0 && limit < 1000 {
		in.MaxKeys = aws.Int32(int32(limit)) // S3 pages hold at most 1000 keys
	}
	var keys []string
	p := s3.NewListObjectsV2Paginator(b.client, in)
	for p.HasMorePages() && (limit <= 0 || len(keys) < limit) {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("s3: list %s after %s: %w", prefix, after, err)
		}
		for _, o := range page.Contents {
			if limit > 0 && len(keys) >= limit {
				break
			}
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys, nil
}

// Ping checks the bucket exists and answers.
func (b *S3) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.readTimeout)
	defer cancel()
	if _, err := b.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &b.bucket}); err != nil {
		return fmt.Errorf("s3: head bucket %s: %w", b.bucket, err)
	}
	return nil
}

func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	var api smithy.APIError
	return errors.As(err, &api) && (api.ErrorCode() == "NoSuchKey" || api.ErrorCode() == "NotFound")
}
