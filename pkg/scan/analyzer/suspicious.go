package analyzer

import (
	"io/fs"
	"strings"
)

// suspiciousDirs are prefixes where droppers stage payloads.
var suspiciousDirs = [...]string{"tmp/", "var/tmp/", "dev/shm/"}

// suspiciousExts are extensions (compared case-insensitively) of
// executables, scripts, archives and documents with macros.
var suspiciousExts = [...]string{
	// executables, libraries
	"exe", "dll", "sys", "scr", "com", "elf", "so", "bin", "run", "out", "ko", "msi",
	// scripts
	"sh", "bash", "zsh", "ksh", "csh", "py", "pl", "rb", "php", "js", "mjs", "cjs", "lua",
	"ps1", "psm1", "bat", "cmd", "vbs", "vbe", "jse", "wsf", "hta",
	// archives, packages
	"zip", "jar", "war", "ear", "apk", "tar", "gz", "tgz", "bz2", "xz", "zst", "7z", "rar",
	"cab", "arj", "lzh", "cpio", "rpm", "deb", "iso", "whl", "egg",
	// documents with macros or scripts
	"doc", "docm", "xls", "xlsm", "ppt", "pptm", "rtf", "pdf", "chm", "lnk",
}

// Suspicious reports whether a file is worth handing to a malware engine
// (ClamAV, YARA): executable (any x bit), under a staging directory
// (tmp/, var/tmp/, dev/shm/), or with an executable, script, archive or
// macro-document extension. It does not allocate.
func Suspicious(path string, mode fs.FileMode) bool {
	if mode&0o111 != 0 {
		return true
	}
	for _, d := range suspiciousDirs {
		if strings.HasPrefix(path, d) {
			return true
		}
	}
	// Extension of the last path element ("x.tar.gz" → "gz").
	dot := strings.LastIndexByte(path, '.')
	if dot < 0 || strings.LastIndexByte(path, '/') > dot {
		return false
	}
	ext := path[dot+1:]
	for _, e := range suspiciousExts {
		if strings.EqualFold(ext, e) {
			return true
		}
	}
	return false
}
