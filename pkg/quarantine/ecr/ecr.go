// Package ecr is the quarantine enforcer for Amazon ECR private
// registries, with one of three actions:
//
//   - archive (default): UpdateImageStorageClass to ARCHIVE. Archived
//     images cannot be pulled (404) and stay listed; release restores
//     them to STANDARD, which ECR does asynchronously (ACTIVATING, up to
//     20 minutes). A push of the same image restores it at once, so the
//     controller calls Quarantine again on every push of a quarantined
//     digest. Archived images are billed for at least 90 days.
//   - retag: tag the image quarantined-<12 hex of the digest>, then remove
//     its other tags (in that order: removing the last tag deletes an ECR
//     image). Pulls by tag fail; pulls by digest still work. Release puts
//     the original tags (Ref.Tags) back where they are free.
//   - delete: BatchDeleteImage by digest, with every tag. Release is
//     impossible (ErrReleaseImpossible).
//
// The registry ID (account) comes from each Ref's host,
// <account>.dkr.ecr.<region>.amazonaws.com. Errors wrap the SDK's, which
// name the service's error code and message and never the credentials.
package ecr

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecr "github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"

	"github.com/customs-scan/customs/pkg/quarantine"
)

// Actions.
const (
	ActionArchive = "archive"
	ActionRetag   = "retag"
	ActionDelete  = "delete"
)

// QuarantineTagPrefix starts the tag the retag action gives an image.
const QuarantineTagPrefix = "quarantined-"

// ErrReleaseImpossible is returned by Release with the delete action.
var ErrReleaseImpossible = errors.New("ecr: the image was deleted by the delete action; release is impossible (push it again)")

// API is the part of *ecr.Client the enforcer uses.
type API interface {
	UpdateImageStorageClass(ctx context.Context, in *awsecr.UpdateImageStorageClassInput, optFns ...func(*awsecr.Options)) (*awsecr.UpdateImageStorageClassOutput, error)
	DescribeImages(ctx context.Context, in *awsecr.DescribeImagesInput, optFns ...func(*awsecr.Options)) (*awsecr.DescribeImagesOutput, error)
	BatchGetImage(ctx context.Context, in *awsecr.BatchGetImageInput, optFns ...func(*awsecr.Options)) (*awsecr.BatchGetImageOutput, error)
	PutImage(ctx context.Context, in *awsecr.PutImageInput, optFns ...func(*awsecr.Options)) (*awsecr.PutImageOutput, error)
	BatchDeleteImage(ctx context.Context, in *awsecr.BatchDeleteImageInput, optFns ...func(*awsecr.Options)) (*awsecr.BatchDeleteImageOutput, error)
}

var _ API = (*awsecr.Client)(nil)

// Config chooses the action.
type Config struct {
	// Action is ActionArchive (default), ActionRetag or ActionDelete.
	Action string
	// Region, when set, is the client's region: refs in other regions are
	// refused (the client would look in the wrong region and answer
	// "not found").
	Region string
}

// Enforcer acts on images in ECR through one client.
type Enforcer struct {
	api    API
	action string
	region string
}

var _ quarantine.Enforcer = (*Enforcer)(nil)

// New checks cfg.
func New(api API, cfg Config) (*Enforcer, error) {
	if api == nil {
		return nil, errors.New("ecr: no client")
	}
	a := strings.ToLower(strings.TrimSpace(cfg.Action))
	switch a {
	case "":
		a = ActionArchive
	case ActionArchive, ActionRetag, ActionDelete:
	default:
		return nil, fmt.Errorf("ecr: action %q: want archive, retag or delete", cfg.Action)
	}
	return &Enforcer{api: api, action: a, region: cfg.Region}, nil
}

// Name implements quarantine.Enforcer: "ecr-archive", "ecr-retag" or
// "ecr-delete".
func (e *Enforcer) Name() string { return "ecr-" + e.action }

var hostRE = regexp.MustCompile(`^([0-9]{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$`)

// ParseHost reads the account (registry ID) and region of an ECR private
// registry host.
func ParseHost(host string) (registryID, region string, err error) {
	m := hostRE.FindStringSubmatch(host)
	if m == nil {
		return "", "", fmt.Errorf("ecr: %q is not <account>.dkr.ecr.<region>.amazonaws.com", host)
	}
	return m[1], m[2], nil
}

// target is a ref checked against the enforcer's region.
type target struct {
	ref        quarantine.Ref
	registryID string
}

func (e *Enforcer) target(ref quarantine.Ref) (target, error) {
	id, region, err := ParseHost(ref.Registry)
	if err != nil {
		return target{}, err
	}
	if e.region != "" && region != e.region {
		return target{}, fmt.Errorf("ecr: %s is in region %s, the client in %s", ref, region, e.region)
	}
	if ref.Repository == "" || !strings.HasPrefix(ref.Digest, "sha256:") {
		return target{}, fmt.Errorf("ecr: %s: want repository@sha256:<hex>", ref)
	}
	return target{ref: ref, registryID: id}, nil
}

func (t target) byDigest() types.ImageIdentifier {
	return types.ImageIdentifier{ImageDigest: aws.String(t.ref.Digest)}
}

// Quarantine applies the action.
func (e *Enforcer) Quarantine(ctx context.Context, ref quarantine.Ref, reason string) (string, error) {
	t, err := e.target(ref)
	if err != nil {
		return "", err
	}
	switch e.action {
	case ActionRetag:
		return e.retag(ctx, t)
	case ActionDelete:
		return e.delete(ctx, t)
	}
	return e.setStorageClass(ctx, t, types.TargetStorageClassArchive)
}

// Release undoes the action.
func (e *Enforcer) Release(ctx context.Context, ref quarantine.Ref) (string, error) {
	t, err := e.target(ref)
	if err != nil {
		return "", err
	}
	switch e.action {
	case ActionRetag:
		return e.untag(ctx, t)
	case ActionDelete:
		return "", fmt.Errorf("release %s: %w", ref, ErrReleaseImpossible)
	}
	return e.setStorageClass(ctx, t, types.TargetStorageClassStandard)
}

// Status describes the image. An image ECR does not have counts as
// blocked: it cannot be pulled.
func (e *Enforcer) Status(ctx context.Context, ref quarantine.Ref) (quarantine.Status, error) {
	t, err := e.target(ref)
	if err != nil {
		return quarantine.Status{}, err
	}
	d, err := e.describe(ctx, t)
	if isCode(err, "ImageNotFoundException") {
		return quarantine.Status{Blocked: true, Detail: "not in the repository (deleted)"}, nil
	}
	if err != nil {
		return quarantine.Status{}, err
	}
	switch e.action {
	case ActionRetag:
		q := quarantineTag(ref.Digest)
		others := slices.DeleteFunc(slices.Clone(d.ImageTags), func(s string) bool { return s == q })
		if len(others) == 0 {
			return quarantine.Status{Blocked: true, Detail: fmt.Sprintf("only tag %s (pulls by digest still work)", q)}, nil
		}
		return quarantine.Status{Detail: "tagged " + strings.Join(others, ", ")}, nil
	case ActionDelete:
		return quarantine.Status{Detail: "present, status " + string(d.ImageStatus)}, nil
	}
	switch d.ImageStatus {
	case types.ImageStatusArchived:
		return quarantine.Status{Blocked: true, Detail: "ARCHIVED (pulls answer 404)"}, nil
	case types.ImageStatusActivating:
		return quarantine.Status{Detail: "ACTIVATING (restore under way, up to 20 minutes)"}, nil
	}
	return quarantine.Status{Detail: string(d.ImageStatus)}, nil
}

// describe reads the image's details. Without a status filter
// DescribeImages shows ACTIVE images only, so the filter asks for ANY.
func (e *Enforcer) describe(ctx context.Context, t target) (types.ImageDetail, error) {
	out, err := e.api.DescribeImages(ctx, &awsecr.DescribeImagesInput{
		RegistryId:     aws.String(t.registryID),
		RepositoryName: aws.String(t.ref.Repository),
		ImageIds:       []types.ImageIdentifier{t.byDigest()},
		Filter:         &types.DescribeImagesFilter{ImageStatus: types.ImageStatusFilterAny},
	})
	if err != nil {
		return types.ImageDetail{}, fmt.Errorf("ecr: DescribeImages %s: %w", t.ref, err)
	}
	for _, d := range out.ImageDetails {
		if aws.ToString(d.ImageDigest) == t.ref.Digest {
			return d, nil
		}
	}
	return types.ImageDetail{}, fmt.Errorf("ecr: DescribeImages %s: %w", t.ref,
		&types.ImageNotFoundException{Message: aws.String("not in the answer")})
}

// setStorageClass archives or restores the image. Both are idempotent:
// an image already in (or on its way to) the target class is a success,
// whether ECR answers with its status or refuses the update.
func (e *Enforcer) setStorageClass(ctx context.Context, t target, class types.TargetStorageClass) (string, error) {
	out, err := e.api.UpdateImageStorageClass(ctx, &awsecr.UpdateImageStorageClassInput{
		RegistryId:         aws.String(t.registryID),
		RepositoryName:     aws.String(t.ref.Repository),
		ImageId:            ptr(t.byDigest()),
		TargetStorageClass: class,
	})
	status := types.ImageStatus("")
	if err == nil {
		status = out.ImageStatus
	} else {
		err = fmt.Errorf("ecr: UpdateImageStorageClass %s to %s: %w", t.ref, class, err)
		// ECR does not document its answer to an update to the class the
		// image is already in; look before failing.
		var ns *types.ImageStorageClassUpdateNotSupportedException
		var ia *types.ImageArchivedException
		if !errors.As(err, &ns) && !errors.As(err, &ia) {
			return "", err
		}
		d, derr := e.describe(ctx, t)
		if derr != nil {
			return "", errors.Join(err, derr)
		}
		status = d.ImageStatus
		if !inClass(status, class) {
			return "", err
		}
	}
	switch status {
	case types.ImageStatusArchived:
		if class != types.TargetStorageClassArchive {
			return "", fmt.Errorf("ecr: UpdateImageStorageClass %s to %s: the image is still ARCHIVED", t.ref, class)
		}
		return "archived (pulls answer 404)", nil
	case types.ImageStatusActivating:
		if class != types.TargetStorageClassStandard {
			return "", fmt.Errorf("ecr: UpdateImageStorageClass %s to %s: the image is ACTIVATING (a restore is under way)", t.ref, class)
		}
		return "restoring, up to 20 minutes", nil
	case types.ImageStatusActive:
		if class != types.TargetStorageClassStandard {
			return "", fmt.Errorf("ecr: UpdateImageStorageClass %s to %s: the image is still ACTIVE", t.ref, class)
		}
		return "active", nil
	}
	return "", fmt.Errorf("ecr: UpdateImageStorageClass %s to %s: unexpected status %q", t.ref, class, status)
}

func inClass(s types.ImageStatus, class types.TargetStorageClass) bool {
	if class == types.TargetStorageClassArchive {
		return s == types.ImageStatusArchived
	}
	return s == types.ImageStatusActive || s == types.ImageStatusActivating
}

// quarantineTag is quarantined-<first 12 hex of the digest>.
func quarantineTag(digest string) string {
	_, h, _ := strings.Cut(digest, ":")
	return QuarantineTagPrefix + h[:min(12, len(h))]
}

// manifest fetches the image's manifest and media type, and answers
// which of the tags point at it, elsewhere, or nowhere.
func (e *Enforcer) manifest(ctx context.Context, t target, tags []string) (m types.Image, here, elsewhere, free []string, err error) {
	ids := []types.ImageIdentifier{t.byDigest()}
	for _, tag := range tags {
		ids = append(ids, types.ImageIdentifier{ImageTag: aws.String(tag)})
	}
	out, err := e.api.BatchGetImage(ctx, &awsecr.BatchGetImageInput{
		RegistryId:     aws.String(t.registryID),
		RepositoryName: aws.String(t.ref.Repository),
		ImageIds:       ids,
		// Ask for every manifest type as stored, or ECR converts.
		AcceptedMediaTypes: []string{
			"application/vnd.oci.image.manifest.v1+json",
			"application/vnd.oci.image.index.v1+json",
			"application/vnd.docker.distribution.manifest.v2+json",
			"application/vnd.docker.distribution.manifest.list.v2+json",
			"application/vnd.docker.distribution.manifest.v1+prettyjws",
		},
	})
	if err != nil {
		return m, nil, nil, nil, fmt.Errorf("ecr: BatchGetImage %s: %w", t.ref, err)
	}
	found := false
	for _, img := range out.Images {
		id := img.ImageId
		if id == nil || aws.ToString(id.ImageDigest) != t.ref.Digest {
			if id != nil && id.ImageTag != nil {
				elsewhere = append(elsewhere, *id.ImageTag)
			}
			continue
		}
		if id.ImageTag != nil {
			here = append(here, *id.ImageTag)
		}
		if !found && img.ImageManifest != nil {
			m, found = img, true
		}
	}
	var failed []types.ImageFailure
	for _, f := range out.Failures {
		if f.ImageId != nil && f.ImageId.ImageTag != nil && f.ImageId.ImageDigest == nil && f.FailureCode == types.ImageFailureCodeImageNotFound {
			free = append(free, *f.ImageId.ImageTag)
			continue
		}
		failed = append(failed, f)
	}
	if !found || len(failed) > 0 {
		return m, nil, nil, nil, &FailureError{Op: "BatchGetImage", Ref: t.ref.String(), Failures: failed}
	}
	return m, here, elsewhere, free, nil
}

// put tags the image (PutImage of its own manifest). Putting a tag the
// image already has is ECR's ImageAlreadyExistsException: success.
func (e *Enforcer) put(ctx context.Context, t target, m types.Image, tag string) error {
	_, err := e.api.PutImage(ctx, &awsecr.PutImageInput{
		RegistryId:             aws.String(t.registryID),
		RepositoryName:         aws.String(t.ref.Repository),
		ImageManifest:          m.ImageManifest,
		ImageManifestMediaType: m.ImageManifestMediaType,
		ImageDigest:            aws.String(t.ref.Digest),
		ImageTag:               aws.String(tag),
	})
	var exists *types.ImageAlreadyExistsException
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("ecr: PutImage %s tag %s: %w", t.ref, tag, err)
	}
	return nil
}

// removeTags untags the image. A tag already gone is no failure.
func (e *Enforcer) removeTags(ctx context.Context, t target, tags []string) error {
	if len(tags) == 0 {
		return nil
	}
	ids := make([]types.ImageIdentifier, 0, len(tags))
	for _, tag := range tags {
		ids = append(ids, types.ImageIdentifier{ImageTag: aws.String(tag)})
	}
	out, err := e.api.BatchDeleteImage(ctx, &awsecr.BatchDeleteImageInput{
		RegistryId:     aws.String(t.registryID),
		RepositoryName: aws.String(t.ref.Repository),
		ImageIds:       ids,
	})
	if err != nil {
		return fmt.Errorf("ecr: BatchDeleteImage %s tags %s: %w", t.ref, strings.Join(tags, ","), err)
	}
	if f := failures(out.Failures); len(f) > 0 {
		return &FailureError{Op: "BatchDeleteImage", Ref: t.ref.String(), Failures: f}
	}
	return nil
}

// retag gives the image its quarantine tag, then removes its other tags.
// The detail names the original tags (those removed now and Ref.Tags, in
// case an earlier attempt removed them) for the record to keep.
func (e *Enforcer) retag(ctx context.Context, t target) (string, error) {
	q := quarantineTag(t.ref.Digest)
	d, err := e.describe(ctx, t)
	if err != nil {
		return "", err
	}
	var remove []string
	hasQ := false
	for _, tag := range d.ImageTags {
		if tag == q {
			hasQ = true
		} else {
			remove = append(remove, tag)
		}
	}
	if !hasQ {
		m, _, _, _, err := e.manifest(ctx, t, nil)
		if err != nil {
			return "", err
		}
		if err := e.put(ctx, t, m, q); err != nil {
			return "", err
		}
	}
	if err := e.removeTags(ctx, t, remove); err != nil {
		return "", err
	}
	original := union(remove, t.ref.Tags, q)
	detail := "tagged " + q
	if len(remove) > 0 {
		detail += "; removed tags " + strings.Join(remove, ", ")
	}
	if len(original) > 0 {
		detail += "; original tags: " + strings.Join(original, ", ")
	}
	return detail, nil
}

// untag puts Ref.Tags back where they are free, then removes the
// quarantine tag unless it would be the image's last.
func (e *Enforcer) untag(ctx context.Context, t target) (string, error) {
	q := quarantineTag(t.ref.Digest)
	want := union(nil, t.ref.Tags, q)
	m, here, elsewhere, free, err := e.manifest(ctx, t, want)
	if err != nil {
		return "", err
	}
	var restored []string
	for _, tag := range free {
		if err := e.put(ctx, t, m, tag); err != nil {
			return "", err
		}
		restored = append(restored, tag)
	}
	var parts []string
	if len(restored) > 0 {
		parts = append(parts, "restored tags "+strings.Join(restored, ", "))
	}
	if len(here) > 0 {
		parts = append(parts, "already tagged "+strings.Join(here, ", "))
	}
	if len(elsewhere) > 0 {
		// A newer image took the tag meanwhile: it stays with it.
		parts = append(parts, "left alone (now on another image): "+strings.Join(elsewhere, ", "))
	}
	if len(restored)+len(here) == 0 {
		parts = append(parts, "kept "+q+" (no original tag to restore; removing the last tag would delete the image)")
		return strings.Join(parts, "; "), nil
	}
	if err := e.removeTags(ctx, t, []string{q}); err != nil {
		return "", err
	}
	parts = append(parts, "removed "+q)
	return strings.Join(parts, "; "), nil
}

// delete removes the image and its tags. An image already gone is done.
func (e *Enforcer) delete(ctx context.Context, t target) (string, error) {
	out, err := e.api.BatchDeleteImage(ctx, &awsecr.BatchDeleteImageInput{
		RegistryId:     aws.String(t.registryID),
		RepositoryName: aws.String(t.ref.Repository),
		ImageIds:       []types.ImageIdentifier{t.byDigest()},
	})
	if err != nil {
		return "", fmt.Errorf("ecr: BatchDeleteImage %s: %w", t.ref, err)
	}
	if f := failures(out.Failures); len(f) > 0 {
		return "", &FailureError{Op: "BatchDeleteImage", Ref: t.ref.String(), Failures: f}
	}
	if len(out.ImageIds) == 0 {
		return "already deleted", nil
	}
	var tags []string
	for _, id := range out.ImageIds {
		if id.ImageTag != nil {
			tags = append(tags, *id.ImageTag)
		}
	}
	if len(tags) > 0 {
		return "deleted with its tags " + strings.Join(tags, ", "), nil
	}
	return "deleted", nil
}

// failures drops ImageNotFound: what is to be removed is gone already.
func failures(fs []types.ImageFailure) []types.ImageFailure {
	var out []types.ImageFailure
	for _, f := range fs {
		if f.FailureCode != types.ImageFailureCodeImageNotFound {
			out = append(out, f)
		}
	}
	return out
}

// FailureError reports the per-image failures of a batch call.
type FailureError struct {
	Op       string
	Ref      string
	Failures []types.ImageFailure
}

func (e *FailureError) Error() string {
	if len(e.Failures) == 0 {
		return fmt.Sprintf("ecr: %s %s: image not found", e.Op, e.Ref)
	}
	var parts []string
	for _, f := range e.Failures {
		id := ""
		if f.ImageId != nil {
			id = aws.ToString(f.ImageId.ImageTag)
			if id == "" {
				id = aws.ToString(f.ImageId.ImageDigest)
			}
		}
		parts = append(parts, fmt.Sprintf("%s %s: %s", id, f.FailureCode, aws.ToString(f.FailureReason)))
	}
	return fmt.Sprintf("ecr: %s %s: %s", e.Op, e.Ref, strings.Join(parts, "; "))
}

// isCode reports whether err carries the service error code.
func isCode(err error, code string) bool {
	var ae interface{ ErrorCode() string }
	return errors.As(err, &ae) && ae.ErrorCode() == code
}

// union is a and b in order without duplicates or drop.
func union(a, b []string, drop string) []string {
	var out []string
	for _, s := range append(slices.Clone(a), b...) {
		if s != "" && s != drop && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }
