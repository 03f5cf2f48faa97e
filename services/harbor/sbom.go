package harbor

import (
	"fmt"
	"io"

	"github.com/customs-scan/customs/pkg/formats/spdx"
	"github.com/customs-scan/customs/pkg/report"
)

// SPDX is the SBOM Harbor asks for (it only ever requests
// application/spdx+json): SPDX 2.3 JSON of the stored report.
func SPDX(w io.Writer, r *report.Report, mediaType string) error {
	if mediaType != "" && mediaType != spdx.ContentType {
		return fmt.Errorf("sbom media type %q: only %s", mediaType, spdx.ContentType)
	}
	return spdx.Encode(w, r)
}
