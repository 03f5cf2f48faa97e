package scan_test

import (
	"testing"

	"github.com/customs-scan/customs/pkg/scan/scantest"
)

// The package analyzers find language packages in the same single pass,
// each with its ecosystem, purl and layer.
func TestPackageAnalyzersFindLanguagePackages(t *testing.T) {
	app := scantest.Layer(t,
		scantest.Reg("app/node_modules/ms/package.json", `{"name": "ms", "version": "2.1.3"}`),
		scantest.Reg("usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\n\nbody\n"),
		scantest.Reg("app/Gemfile.lock", "GEM\n  remote: https://rubygems.org/\n  specs:\n    rack (3.0.8)\n\nPLATFORMS\n  ruby\n"),
		scantest.Reg("app/composer.lock", `{"packages": [{"name": "monolog/monolog", "version": "3.5.0"}], "packages-dev": []}`),
		scantest.Reg("app/Cargo.lock", "version = 3\n\n[[package]]\nname = \"serde\"\nversion = \"1.0.193\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n"),
	)
	res := mustScan(t, scantest.Image(t, scantest.Layer(t, scantest.DebianRootfs(t)...), app))
	want := map[string]string{
		"ms":              "pkg:npm/ms@2.1.3",
		"six":             "pkg:pypi/six@1.16.0",
		"rack":            "pkg:gem/rack@3.0.8",
		"monolog/monolog": "pkg:composer/monolog/monolog@3.5.0",
		"serde":           "pkg:cargo/serde@1.0.193",
	}
	appDigest := layerDigest(t, app)
	for _, p := range res.Packages {
		purl, ok := want[p.Name]
		if !ok {
			continue
		}
		if p.PURL != purl || p.Layer != appDigest || p.Ecosystem == "" {
			t.Errorf("%s: purl %q layer %s ecosystem %q; want %q in the app layer", p.Name, p.PURL, p.Layer, p.Ecosystem, purl)
		}
		delete(want, p.Name)
	}
	if len(want) != 0 {
		t.Errorf("not found: %v (packages: %+v)", want, res.Packages)
	}
}
