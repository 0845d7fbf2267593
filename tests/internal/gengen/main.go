// Command gengen generates package genquery, GORM Gen's query code for genmodel.GenAccount, which
// tests/gen_test.go writes through. The generated code is committed: the tests never generate.
// Run it from the tests module (go generate ./... there does):
//
//	go run ./internal/gengen
package main

import (
	"gorm.io/gen"

	"github.com/go-optlock/optlock/tests/internal/genmodel"
)

func main() {
	g := gen.NewGenerator(gen.Config{OutPath: "internal/genquery", Mode: gen.WithQueryInterface})
	g.ApplyBasic(genmodel.GenAccount{})
	g.ApplyInterface(func(genmodel.RawQuerier) {}, genmodel.GenAccount{})
	g.Execute()
}
