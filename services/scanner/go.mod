module github.com/customs-scan/customs/services/scanner

go 1.26

require (
	github.com/customs-scan/customs/pkg v0.0.0
	github.com/customs-scan/customs/proto v0.0.0
)

replace (
	github.com/customs-scan/customs/pkg => ../../pkg
	github.com/customs-scan/customs/proto => ../../proto
)
