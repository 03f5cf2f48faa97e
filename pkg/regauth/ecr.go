package regauth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/google/go-containerregistry/pkg/authn"
)

// ecrTokenLifetime is what ECR documents when an answer lacks expiresAt.
const ecrTokenLifetime = 12 * time.Hour

// ecrAPI is the one call needed of the ECR client.
type ecrAPI interface {
	GetAuthorizationToken(ctx context.Context, in *ecr.GetAuthorizationTokenInput, opts ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error)
}

// ecrSource fetches and caches one ECR registry's authorization token.
type ecrSource struct {
	host          string
	settings      ECRSettings
	now           func() time.Time
	refreshBefore time.Duration

	// mu is held across a refresh: concurrent pulls wait for one request
	// instead of each asking ECR.
	mu     sync.Mutex
	client ecrAPI
	cur    *ecrToken
}

type ecrToken struct {
	username         string
	password         Secret
	fetched, expires time.Time
}

func newECRSource(e Entry, o options) *ecrSource {
	now := o.now
	if now == nil {
		now = time.Now
	}
	return &ecrSource{host: e.Host, settings: e.ECR, now: now, refreshBefore: o.refreshBefore}
}

// refreshAt is when t is replaced: once less than refreshBefore (default:
// half its lifetime, at least 30 minutes) remains.
func (s *ecrSource) refreshAt(t *ecrToken) time.Time {
	before := s.refreshBefore
	if before <= 0 {
		before = max(t.expires.Sub(t.fetched)/2, 30*time.Minute)
	}
	return t.expires.Add(-before)
}

// token returns the cached token, or a new one once the cached one is due.
func (s *ecrSource) token(ctx context.Context) (*ecrToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.cur != nil && now.Before(s.refreshAt(s.cur)) {
		return s.cur, nil
	}
	t, err := s.fetch(ctx, now)
	if err != nil {
		// A token with time left still serves while ECR cannot be asked.
		if s.cur != nil && now.Add(time.Minute).Before(s.cur.expires) {
			return s.cur, nil
		}
		return nil, fmt.Errorf("regauth: ECR authorization token for %s: %w", s.host, err)
	}
	s.cur = t
	return t, nil
}

func (s *ecrSource) fetch(ctx context.Context, now time.Time) (*ecrToken, error) {
	if s.client == nil {
		c, err := newECRClient(ctx, s.settings)
		if err != nil {
			return nil, err
		}
		s.client = c
	}
	out, err := s.client.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return nil, err
	}
	if len(out.AuthorizationData) == 0 || out.AuthorizationData[0].AuthorizationToken == nil {
		return nil, errors.New("GetAuthorizationToken answered without authorization data")
	}
	data := out.AuthorizationData[0]
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(data.AuthorizationToken))
	if err != nil {
		return nil, errors.New("GetAuthorizationToken answered a token that is not base64")
	}
	// "AWS:<password>"; the password itself may hold colons.
	parts := strings.SplitN(string(raw), ":", 2)
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return nil, errors.New("GetAuthorizationToken answered a token that is not <user>:<password>")
	}
	expires := now.Add(ecrTokenLifetime)
	if data.ExpiresAt != nil {
		expires = *data.ExpiresAt
	}
	return &ecrToken{username: parts[0], password: NewSecret(parts[1]), fetched: now, expires: expires}, nil
}

func newECRClient(ctx context.Context, s ECRSettings) (ecrAPI, error) { return NewECRClient(ctx, s) }

// NewECRClient builds an ECR client from the default credential chain
// (environment, shared files, web identity, container and instance
// roles), assuming RoleARN first when set: the same client pulls use, for
// the quarantine enforcer.
func NewECRClient(ctx context.Context, s ECRSettings) (*ecr.Client, error) {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(s.Region))
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	if s.RoleARN != "" {
		provider := stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), s.RoleARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = "customs-registry-auth"
		})
		cfg.Credentials = aws.NewCredentialsCache(provider)
	}
	return ecr.NewFromConfig(cfg, func(o *ecr.Options) {
		if s.Endpoint != "" {
			o.BaseEndpoint = aws.String(s.Endpoint)
		}
	}), nil
}

// ecrAuthenticator asks its source at every request, so a long pull
// moves on to the refreshed token.
type ecrAuthenticator struct{ src *ecrSource }

// Authorization implements authn.Authenticator.
func (a *ecrAuthenticator) Authorization() (*authn.AuthConfig, error) {
	return a.AuthorizationContext(context.Background())
}

// AuthorizationContext implements authn.ContextAuthenticator.
func (a *ecrAuthenticator) AuthorizationContext(ctx context.Context) (*authn.AuthConfig, error) {
	t, err := a.src.token(ctx)
	if err != nil {
		return nil, err
	}
	return &authn.AuthConfig{Username: t.username, Password: t.password.Reveal()}, nil
}

// String keeps the token out of %v.
func (a *ecrAuthenticator) String() string { return "regauth.ECR(" + a.src.host + ")" }
