package ecr_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsecr "github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-cmp/cmp"

	"github.com/customs-scan/customs/pkg/quarantine"
	"github.com/customs-scan/customs/pkg/quarantine/ecr"
)

const (
	account   = "123456789012"
	region    = "eu-west-1"
	host      = account + ".dkr.ecr." + region + ".amazonaws.com"
	repoName  = "team/app"
	accessKey = "AKIDCUSTOMSTEST"
	secretKey = "very-secret-key-do-not-print"
	manifest  = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`
	ociMedia  = "application/vnd.oci.image.manifest.v1+json"
)

var digest = func() string {
	s := sha256.Sum256([]byte(manifest))
	return "sha256:" + hex.EncodeToString(s[:])
}()

type image struct {
	manifest, mediaType string
	status              string // ACTIVE, ARCHIVED, ACTIVATING
	tags                []string
}

// fakeECR speaks ECR's JSON 1.1 protocol for the five actions the
// enforcer uses, keeps images (status, tags) and checks each request's
// target, content type, SigV4 authorization and body.
type fakeECR struct {
	t *testing.T

	mu     sync.Mutex
	images map[string]*image // digest -> image, in repoName
	calls  []string          // action names
	bodies []map[string]any
	// alreadyErr: an update to the class the image is in is refused with
	// ImageStorageClassUpdateNotSupportedException (ECR's behaviour there
	// is undocumented); otherwise it answers the current status.
	alreadyErr bool
}

func newFake(t *testing.T) (*fakeECR, *awsecr.Client) {
	f := &fakeECR{t: t, images: map[string]*image{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	client := awsecr.New(awsecr.Options{
		Region:           region,
		Credentials:      credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
		BaseEndpoint:     aws.String(srv.URL),
		HTTPClient:       srv.Client(),
		RetryMaxAttempts: 1,
	})
	return f, client
}

func (f *fakeECR) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func (f *fakeECR) lastBody() map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bodies[len(f.bodies)-1]
}

func awsError(w http.ResponseWriter, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", "req-1")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}

func ok(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", "req-1")
	_ = json.NewEncoder(w).Encode(v)
}

type imageID struct {
	ImageDigest string `json:"imageDigest,omitempty"`
	ImageTag    string `json:"imageTag,omitempty"`
}

func (f *fakeECR) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	action, ok1 := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "AmazonEC2ContainerRegistry_V20150921.")
	auth := r.Header.Get("Authorization")
	wantCred := "AWS4-HMAC-SHA256 Credential=" + accessKey + "/"
	switch {
	case r.Method != http.MethodPost || r.URL.Path != "/" || !ok1:
		awsError(w, "UnknownOperationException", "bad request line or target")
		return
	case r.Header.Get("Content-Type") != "application/x-amz-json-1.1":
		awsError(w, "SerializationException", "content type "+r.Header.Get("Content-Type"))
		return
	case !strings.HasPrefix(auth, wantCred) || !strings.Contains(auth, "/"+region+"/ecr/aws4_request") || !strings.Contains(auth, "Signature="):
		awsError(w, "UnrecognizedClientException", "bad authorization "+auth)
		return
	}
	var in struct {
		RegistryID             string                       `json:"registryId"`
		RepositoryName         string                       `json:"repositoryName"`
		ImageID                imageID                      `json:"imageId"`
		ImageIDs               []imageID                    `json:"imageIds"`
		TargetStorageClass     string                       `json:"targetStorageClass"`
		Filter                 struct{ ImageStatus string } `json:"filter"`
		ImageManifest          string                       `json:"imageManifest"`
		ImageManifestMediaType string                       `json:"imageManifestMediaType"`
		ImageDigest            string                       `json:"imageDigest"`
		ImageTag               string                       `json:"imageTag"`
		AcceptedMediaTypes     []string                     `json:"acceptedMediaTypes"`
	}
	body, _ := io.ReadAll(r.Body)
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil || json.Unmarshal(body, &in) != nil {
		awsError(w, "SerializationException", "bad json")
		return
	}
	f.calls = append(f.calls, action)
	f.bodies = append(f.bodies, raw)
	if in.RegistryID != account {
		awsError(w, "InvalidParameterException", "registryId "+in.RegistryID)
		return
	}
	if in.RepositoryName != repoName {
		awsError(w, "RepositoryNotFoundException", fmt.Sprintf("The repository with name '%s' does not exist in the registry with id '%s'", in.RepositoryName, account))
		return
	}
	notFound := func(id imageID) {
		awsError(w, "ImageNotFoundException", fmt.Sprintf("The image with imageId {imageDigest:'%s', imageTag:'%s'} does not exist within the repository with name '%s' in the registry with id '%s'", id.ImageDigest, id.ImageTag, repoName, account))
	}
	byTag := func(tag string) (string, *image) {
		for d, img := range f.images {
			if slices.Contains(img.tags, tag) {
				return d, img
			}
		}
		return "", nil
	}
	switch action {
	case "UpdateImageStorageClass":
		img := f.images[in.ImageID.ImageDigest]
		if in.ImageID.ImageDigest == "" || img == nil {
			notFound(in.ImageID)
			return
		}
		switch {
		case in.TargetStorageClass == "ARCHIVE" && img.status == "ACTIVE":
			img.status = "ARCHIVED"
		case in.TargetStorageClass == "STANDARD" && img.status == "ARCHIVED":
			img.status = "ACTIVATING"
		case in.TargetStorageClass != "ARCHIVE" && in.TargetStorageClass != "STANDARD":
			awsError(w, "ValidationException", "targetStorageClass")
			return
		case f.alreadyErr:
			awsError(w, "ImageStorageClassUpdateNotSupportedException", "The image is already in storage class "+in.TargetStorageClass)
			return
		}
		ok(w, map[string]any{"registryId": account, "repositoryName": repoName, "imageId": in.ImageID, "imageStatus": img.status})
	case "DescribeImages":
		var out []map[string]any
		for _, id := range in.ImageIDs {
			img := f.images[id.ImageDigest]
			// Like ECR: without a filter only ACTIVE images are described.
			if img == nil || (img.status != "ACTIVE" && in.Filter.ImageStatus != "ANY" && in.Filter.ImageStatus != img.status) {
				notFound(id)
				return
			}
			out = append(out, map[string]any{"registryId": account, "repositoryName": repoName, "imageDigest": id.ImageDigest, "imageTags": img.tags, "imageStatus": img.status, "imageManifestMediaType": img.mediaType})
		}
		ok(w, map[string]any{"imageDetails": out})
	case "BatchGetImage":
		if !slices.Contains(in.AcceptedMediaTypes, ociMedia) {
			awsError(w, "InvalidParameterException", "acceptedMediaTypes")
			return
		}
		images, failures := []map[string]any{}, []map[string]any{}
		for _, id := range in.ImageIDs {
			d, img := id.ImageDigest, f.images[id.ImageDigest]
			if id.ImageTag != "" {
				d, img = byTag(id.ImageTag)
			}
			if img == nil || img.status != "ACTIVE" {
				failures = append(failures, map[string]any{"imageId": id, "failureCode": "ImageNotFound", "failureReason": "Requested image not found"})
				continue
			}
			images = append(images, map[string]any{"registryId": account, "repositoryName": repoName, "imageId": imageID{ImageDigest: d, ImageTag: id.ImageTag}, "imageManifest": img.manifest, "imageManifestMediaType": img.mediaType})
		}
		ok(w, map[string]any{"images": images, "failures": failures})
	case "PutImage":
		sum := sha256.Sum256([]byte(in.ImageManifest))
		d := "sha256:" + hex.EncodeToString(sum[:])
		if in.ImageDigest != "" && in.ImageDigest != d {
			awsError(w, "ImageDigestDoesNotMatchException", "digest")
			return
		}
		if in.ImageManifestMediaType != ociMedia {
			awsError(w, "InvalidParameterException", "media type "+in.ImageManifestMediaType)
			return
		}
		img := f.images[d]
		if img == nil {
			img = &image{manifest: in.ImageManifest, mediaType: in.ImageManifestMediaType}
			f.images[d] = img
		}
		if slices.Contains(img.tags, in.ImageTag) && img.status == "ACTIVE" {
			awsError(w, "ImageAlreadyExistsException", fmt.Sprintf("Image with digest '%s' and tag '%s' already exists in the repository", d, in.ImageTag))
			return
		}
		if od, other := byTag(in.ImageTag); other != nil && od != d { // mutable: the tag moves
			other.tags = slices.DeleteFunc(other.tags, func(s string) bool { return s == in.ImageTag })
		}
		img.status = "ACTIVE" // a push restores an archived image
		if in.ImageTag != "" && !slices.Contains(img.tags, in.ImageTag) {
			img.tags = append(img.tags, in.ImageTag)
		}
		ok(w, map[string]any{"image": map[string]any{"imageId": imageID{ImageDigest: d, ImageTag: in.ImageTag}}})
	case "BatchDeleteImage":
		deleted, failures := []imageID{}, []map[string]any{}
		for _, id := range in.ImageIDs {
			switch {
			case id.ImageDigest != "" && f.images[id.ImageDigest] != nil:
				for _, tag := range f.images[id.ImageDigest].tags {
					deleted = append(deleted, imageID{ImageDigest: id.ImageDigest, ImageTag: tag})
				}
				if len(f.images[id.ImageDigest].tags) == 0 {
					deleted = append(deleted, imageID{ImageDigest: id.ImageDigest})
				}
				delete(f.images, id.ImageDigest)
			case id.ImageTag != "":
				d, img := byTag(id.ImageTag)
				if img == nil {
					failures = append(failures, map[string]any{"imageId": id, "failureCode": "ImageNotFound", "failureReason": "Requested image not found"})
					continue
				}
				img.tags = slices.DeleteFunc(img.tags, func(s string) bool { return s == id.ImageTag })
				if len(img.tags) == 0 { // the last tag: the image goes
					delete(f.images, d)
				}
				deleted = append(deleted, imageID{ImageDigest: d, ImageTag: id.ImageTag})
			default:
				failures = append(failures, map[string]any{"imageId": id, "failureCode": "ImageNotFound", "failureReason": "Requested image not found"})
			}
		}
		ok(w, map[string]any{"imageIds": deleted, "failures": failures})
	default:
		awsError(w, "UnknownOperationException", action)
	}
}

func (f *fakeECR) set(d string, status string, tags ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.images[d] = &image{manifest: manifest, mediaType: ociMedia, status: status, tags: tags}
}

func (f *fakeECR) get(d string) *image {
	f.mu.Lock()
	defer f.mu.Unlock()
	if img := f.images[d]; img != nil {
		c := *img
		c.tags = slices.Clone(img.tags)
		return &c
	}
	return nil
}

var ref = quarantine.Ref{Registry: host, Repository: repoName, Digest: digest, Tags: []string{"v1"}}

func TestArchive(t *testing.T) {
	for _, alreadyErr := range []bool{false, true} {
		t.Run(fmt.Sprintf("alreadyErr=%v", alreadyErr), func(t *testing.T) {
			ctx := context.Background()
			f, client := newFake(t)
			f.alreadyErr = alreadyErr
			f.set(digest, "ACTIVE", "v1", "latest")
			e, err := ecr.New(client, ecr.Config{Region: region})
			if err != nil {
				t.Fatal(err)
			}
			if e.Name() != "ecr-archive" {
				t.Errorf("name = %s", e.Name())
			}
			st, err := e.Status(ctx, ref)
			if err != nil || st.Blocked {
				t.Fatalf("status before: %+v, %v", st, err)
			}
			if _, err := e.Quarantine(ctx, ref, "malware"); err != nil {
				t.Fatal(err)
			}
			want := map[string]any{"registryId": account, "repositoryName": repoName, "imageId": map[string]any{"imageDigest": digest}, "targetStorageClass": "ARCHIVE"}
			if diff := cmp.Diff(want, f.lastBody()); diff != "" {
				t.Errorf("UpdateImageStorageClass body (-want +got):\n%s", diff)
			}
			// Twice: already archived is a success.
			detail, err := e.Quarantine(ctx, ref, "malware")
			if err != nil || !strings.Contains(detail, "archived") {
				t.Fatalf("second quarantine: %q, %v", detail, err)
			}
			st, err = e.Status(ctx, ref)
			if err != nil || !st.Blocked {
				t.Fatalf("status archived: %+v, %v", st, err)
			}

			// A push restores the image; the controller quarantines again.
			f.set(digest, "ACTIVE", "v1", "latest")
			if _, err := e.Quarantine(ctx, ref, "malware"); err != nil {
				t.Fatal(err)
			}
			if got := f.get(digest).status; got != "ARCHIVED" {
				t.Fatalf("after re-push and quarantine: %s", got)
			}

			detail, err = e.Release(ctx, ref)
			if err != nil || detail != "restoring, up to 20 minutes" {
				t.Fatalf("release: %q, %v", detail, err)
			}
			if got := f.lastBody()["targetStorageClass"]; got != "STANDARD" {
				t.Errorf("release sent %v", got)
			}
			st, err = e.Status(ctx, ref)
			if err != nil || st.Blocked || !strings.Contains(st.Detail, "ACTIVATING") {
				t.Fatalf("status activating: %+v, %v", st, err)
			}
			// Release again while restoring, and once restored.
			if _, err := e.Release(ctx, ref); err != nil {
				t.Fatalf("second release: %v", err)
			}
			f.set(digest, "ACTIVE", "v1", "latest")
			if detail, err := e.Release(ctx, ref); err != nil || detail != "active" {
				t.Fatalf("release of an active image: %q, %v", detail, err)
			}

			calls := f.take()
			want2 := []string{"DescribeImages", "UpdateImageStorageClass", "UpdateImageStorageClass", "DescribeImages", "UpdateImageStorageClass", "UpdateImageStorageClass", "DescribeImages", "UpdateImageStorageClass", "UpdateImageStorageClass"}
			if alreadyErr { // each refused update is checked with DescribeImages
				want2 = []string{"DescribeImages", "UpdateImageStorageClass", "UpdateImageStorageClass", "DescribeImages", "DescribeImages", "UpdateImageStorageClass", "UpdateImageStorageClass", "DescribeImages", "UpdateImageStorageClass", "DescribeImages", "UpdateImageStorageClass", "DescribeImages"}
			}
			if diff := cmp.Diff(want2, calls); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRetag(t *testing.T) {
	ctx := context.Background()
	f, client := newFake(t)
	f.set(digest, "ACTIVE", "v1", "latest")
	e, err := ecr.New(client, ecr.Config{Action: ecr.ActionRetag})
	if err != nil {
		t.Fatal(err)
	}
	q := "quarantined-" + digest[7:19]
	detail, err := e.Quarantine(ctx, ref, "malware")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(detail, "original tags: v1, latest") {
		t.Errorf("detail = %q", detail)
	}
	if diff := cmp.Diff([]string{"DescribeImages", "BatchGetImage", "PutImage", "BatchDeleteImage"}, f.take()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{q}, f.get(digest).tags); diff != "" {
		t.Errorf("tags (-want +got):\n%s", diff)
	}
	// Twice: nothing more to do.
	if _, err := e.Quarantine(ctx, ref, "malware"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"DescribeImages"}, f.take()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	st, err := e.Status(ctx, ref)
	if err != nil || !st.Blocked {
		t.Fatalf("status: %+v, %v", st, err)
	}
	f.take()

	// Meanwhile "latest" went to another image: release leaves it there.
	other := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[],"annotations":{"x":"y"}}`
	sum := sha256.Sum256([]byte(other))
	otherDigest := "sha256:" + hex.EncodeToString(sum[:])
	f.mu.Lock()
	f.images[otherDigest] = &image{manifest: other, mediaType: ociMedia, status: "ACTIVE", tags: []string{"latest"}}
	f.mu.Unlock()

	rel := ref
	rel.Tags = []string{"v1", "latest"}
	detail, err = e.Release(ctx, rel)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(detail)
	if diff := cmp.Diff([]string{"v1"}, f.get(digest).tags); diff != "" {
		t.Errorf("tags after release (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"latest"}, f.get(otherDigest).tags); diff != "" {
		t.Errorf("other image's tags (-want +got):\n%s", diff)
	}
	if !strings.Contains(detail, "left alone (now on another image): latest") {
		t.Errorf("detail = %q", detail)
	}
	if diff := cmp.Diff([]string{"BatchGetImage", "PutImage", "BatchDeleteImage"}, f.take()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	// Twice: v1 is there, the quarantine tag gone.
	if _, err := e.Release(ctx, rel); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"v1"}, f.get(digest).tags); diff != "" {
		t.Errorf("tags after second release (-want +got):\n%s", diff)
	}
	st, err = e.Status(ctx, ref)
	if err != nil || st.Blocked {
		t.Fatalf("status: %+v, %v", st, err)
	}
}

func TestRetagReleaseWithoutTags(t *testing.T) {
	ctx := context.Background()
	f, client := newFake(t)
	f.set(digest, "ACTIVE", "v1")
	e, _ := ecr.New(client, ecr.Config{Action: ecr.ActionRetag})
	if _, err := e.Quarantine(ctx, ref, ""); err != nil {
		t.Fatal(err)
	}
	noTags := ref
	noTags.Tags = nil
	detail, err := e.Release(ctx, noTags)
	if err != nil {
		t.Fatal(err)
	}
	// Removing the quarantine tag would delete the image: it stays.
	if img := f.get(digest); img == nil || len(img.tags) != 1 || !strings.Contains(detail, "kept quarantined-") {
		t.Fatalf("image %+v, detail %q", img, detail)
	}
}

func TestDelete(t *testing.T) {
	ctx := context.Background()
	f, client := newFake(t)
	f.set(digest, "ACTIVE", "v1")
	e, _ := ecr.New(client, ecr.Config{Action: "delete"})
	detail, err := e.Quarantine(ctx, ref, "")
	if err != nil || detail != "deleted with its tags v1" {
		t.Fatalf("quarantine: %q, %v", detail, err)
	}
	if want := map[string]any{"registryId": account, "repositoryName": repoName, "imageIds": []any{map[string]any{"imageDigest": digest}}}; !cmp.Equal(want, f.lastBody()) {
		t.Errorf("body = %v", f.lastBody())
	}
	if f.get(digest) != nil {
		t.Fatal("image still there")
	}
	if detail, err := e.Quarantine(ctx, ref, ""); err != nil || detail != "already deleted" {
		t.Fatalf("second quarantine: %q, %v", detail, err)
	}
	st, err := e.Status(ctx, ref)
	if err != nil || !st.Blocked {
		t.Fatalf("status: %+v, %v", st, err)
	}
	if _, err := e.Release(ctx, ref); !errors.Is(err, ecr.ErrReleaseImpossible) {
		t.Fatalf("release: %v", err)
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	_, client := newFake(t)
	for _, action := range []string{ecr.ActionArchive, ecr.ActionRetag} {
		e, _ := ecr.New(client, ecr.Config{Action: action})
		_, err := e.Quarantine(ctx, ref, "")
		if err == nil {
			t.Fatalf("%s: no error", action)
		}
		for _, s := range []string{"ImageNotFoundException", "does not exist within the repository"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: error %q does not say %q", action, err, s)
			}
		}
		if strings.Contains(err.Error(), secretKey) {
			t.Errorf("%s: error carries the secret key", action)
		}
	}
	e, _ := ecr.New(client, ecr.Config{})
	bad := ref
	bad.Repository = "other"
	if _, err := e.Quarantine(ctx, bad, ""); err == nil || !strings.Contains(err.Error(), "RepositoryNotFoundException") {
		t.Errorf("err = %v", err)
	}
	bad = ref
	bad.Registry = "registry.example.com"
	if _, err := e.Quarantine(ctx, bad, ""); err == nil {
		t.Error("a non-ECR host was accepted")
	}
	e, _ = ecr.New(client, ecr.Config{Region: "us-east-1"})
	if _, err := e.Quarantine(ctx, ref, ""); err == nil || !strings.Contains(err.Error(), "region") {
		t.Errorf("err = %v", err)
	}
	if _, err := ecr.New(client, ecr.Config{Action: "burn"}); err == nil {
		t.Error("unknown action accepted")
	}
}

func TestParseHost(t *testing.T) {
	for host, want := range map[string][2]string{
		"123456789012.dkr.ecr.us-east-1.amazonaws.com":          {"123456789012", "us-east-1"},
		"123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com": {"123456789012", "us-gov-west-1"},
		"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn":      {"123456789012", "cn-north-1"},
	} {
		id, r, err := ecr.ParseHost(host)
		if err != nil || id != want[0] || r != want[1] {
			t.Errorf("%s: %s %s %v", host, id, r, err)
		}
		if !quarantine.IsECRHost(host) {
			t.Errorf("%s: not an ECR host for quarantine.IsECRHost", host)
		}
	}
	if _, _, err := ecr.ParseHost("public.ecr.aws"); err == nil {
		t.Error("public.ecr.aws accepted")
	}
}
