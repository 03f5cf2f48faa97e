package secrets

import "strings"

// skipDirs are trees that hold no credentials but many (often large)
// files: documentation, translations, headers, icons and fonts, package
// manager databases and caches, kernel modules and firmware, CA bundles
// (public certificates), and language toolchains whose test data holds
// well-known sample keys.
var skipDirs = []string{
	"usr/share/doc/",
	"usr/share/man/",
	"usr/share/info/",
	"usr/share/locale/",
	"usr/share/i18n/",
	"usr/share/zoneinfo/",
	"usr/share/icons/",
	"usr/share/fonts/",
	"usr/share/pixmaps/",
	"usr/share/mime/",
	"usr/share/terminfo/",
	"usr/share/X11/",
	"usr/share/help/",
	"usr/share/gtk-doc/",
	"usr/share/common-licenses/",
	"usr/share/ca-certificates/",
	"usr/share/perl/",
	"usr/share/perl5/",
	"usr/share/vim/",
	"usr/lib/locale/",
	"usr/include/",
	"usr/src/",
	"usr/lib/modules/",
	"usr/lib/firmware/",
	"usr/local/go/",
	"usr/lib/go/",
	"usr/lib/jvm/",
	"usr/share/javascript/",
	"lib/modules/",
	"lib/firmware/",
	"etc/ssl/certs/",
	"etc/pki/ca-trust/extracted/",
	"var/lib/dpkg/",
	"var/lib/apt/lists/",
	"var/lib/rpm/",
	"var/lib/yum/",
	"var/lib/dnf/",
	"var/cache/",
	"var/log/",
	"proc/",
	"sys/",
	"dev/",
}

// skipExts are binary formats (and sourcemaps), lower case, without the
// dot. Text formats that carry secrets (.pem, .key, .env, .json, .yaml,
// .tfvars, .npmrc, …) are absent on purpose.
var skipExts = map[string]struct{}{
	// libraries, objects, bytecode, executables
	"so": {}, "a": {}, "o": {}, "ko": {}, "dll": {}, "exe": {}, "dylib": {}, "lib": {},
	"pyc": {}, "pyo": {}, "pyd": {}, "class": {}, "jar": {}, "war": {}, "ear": {}, "wasm": {},
	"beam": {}, "node": {}, "pdb": {}, "rlib": {}, "rmeta": {},
	// archives and packages
	"zip": {}, "gz": {}, "tgz": {}, "xz": {}, "bz2": {}, "zst": {}, "lz4": {}, "lzma": {},
	"7z": {}, "rar": {}, "tar": {}, "deb": {}, "rpm": {}, "apk": {}, "whl": {}, "egg": {},
	"gem": {}, "nupkg": {}, "iso": {}, "img": {}, "qcow2": {}, "bin": {},
	// images, fonts, media, documents
	"png": {}, "jpg": {}, "jpeg": {}, "gif": {}, "bmp": {}, "ico": {}, "icns": {}, "webp": {},
	"tif": {}, "tiff": {}, "svg": {}, "psd": {}, "ttf": {}, "otf": {}, "woff": {}, "woff2": {},
	"eot": {}, "pfb": {}, "mp3": {}, "mp4": {}, "ogg": {}, "wav": {}, "flac": {}, "avi": {},
	"mov": {}, "webm": {}, "pdf": {}, "doc": {}, "docx": {}, "xls": {}, "xlsx": {}, "ppt": {},
	"pptx": {},
	// compiled data and databases
	"mo": {}, "gmo": {}, "cat": {}, "pak": {}, "dat": {}, "db": {}, "sqlite": {}, "sqlite3": {},
	"mdb": {}, "pack": {}, "idx": {}, "cache": {}, "hwdb": {}, "gresource": {}, "typelib": {},
	"map": {}, "onnx": {}, "pt": {}, "safetensors": {}, "npy": {},
}

// maxExt is the longest extension looked up.
const maxExt = 12

// skipPath reports whether Match declines path. It does not allocate.
func skipPath(path string) bool {
	for _, d := range skipDirs {
		if len(path) >= len(d) && path[0] == d[0] && strings.HasPrefix(path, d) {
			return true
		}
	}
	if strings.Contains(path, "node_modules/") {
		return true // gitleaks' global allowlist; skipped before reading
	}
	base := path[strings.LastIndexByte(path, '/')+1:]
	if strings.Contains(base, ".so.") {
		return true // libfoo.so.1.2
	}
	dot := strings.LastIndexByte(base, '.')
	if dot < 0 || len(base)-dot-1 > maxExt || dot == len(base)-1 {
		return false
	}
	var buf [maxExt]byte
	ext := buf[:0]
	for i := dot + 1; i < len(base); i++ {
		c := base[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		ext = append(ext, c)
	}
	_, skip := skipExts[string(ext)]
	return skip
}
