#!/usr/bin/env bash
# What an application that requires optlock gets, checked on throwaway consumer modules in a temp dir
# (each requires optlock through a replace directive to this checkout):
#
#   1. An SQLite application that asks for the lowest versions GORM v1.31.2 itself allows
#      (gorm.io/driver/sqlite v1.6.0, github.com/mattn/go-sqlite3 v1.14.22) and testify v1.7.2 gets
#      exactly those: optlock raises none of them (`go list -m all`). It builds (CGO_ENABLED=0: the
#      driver's stub, so no C compiler run; the point is that optlock compiles at these minimums).
#   2. A PostgreSQL-only application (gorm.io/driver/postgres) gains exactly one package by importing
#      optlock, optlock itself: no SQLite or MySQL driver, no testify (`go list -deps`).
#
#   scripts/consumer-check.sh    # from anywhere; needs the module proxy (or a warm module cache)
#
# Under a minute with a warm module cache. Exit status 0 only if every check holds.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOWORK=off GOFLAGS=-mod=mod

fail() { printf 'consumer-check: %s\n' "$*" >&2; exit 1; }

# The versions an application asks for: GORM v1.31.2's own go.mod already requires
# gorm.io/driver/sqlite v1.6.0 and github.com/mattn/go-sqlite3 v1.14.22, so no application with that GORM
# can ask for less; testify v1.7.2 is the lowest optlock's own tests compile with (ErrorContains) whose
# gopkg.in/yaml.v3 is past CVE-2022-28948.
declare -A asked=(
  [gorm.io/gorm]=v1.31.2
  [gorm.io/driver/sqlite]=v1.6.0
  [github.com/mattn/go-sqlite3]=v1.14.22
  [github.com/stretchr/testify]=v1.7.2
)

# 1. The SQLite application.
app="$work/sqliteapp"
mkdir -p "$app"
cat >"$app/go.mod" <<EOF
module example.com/sqliteapp

go 1.22.0

require (
	github.com/go-optlock/optlock v0.0.0
	github.com/mattn/go-sqlite3 ${asked[github.com/mattn/go-sqlite3]}
	github.com/stretchr/testify ${asked[github.com/stretchr/testify]}
	gorm.io/driver/sqlite ${asked[gorm.io/driver/sqlite]}
	gorm.io/gorm ${asked[gorm.io/gorm]}
)

replace github.com/go-optlock/optlock => $repo
EOF
cat >"$app/main.go" <<'EOF'
package main

import (
	"github.com/go-optlock/optlock"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
)

type Account struct {
	ID      uint
	Version int64
}

func main() {
	db, err := gorm.Open(sqlite.Open("app.db"), &gorm.Config{})
	if err == nil {
		err = db.Use(optlock.New(optlock.Guard(&Account{})))
	}
	if err != nil {
		panic(err)
	}
}
EOF
cat >"$app/main_test.go" <<'EOF'
package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNothing(t *testing.T) { require.True(t, true) }
EOF
(cd "$app" && go mod tidy >/dev/null 2>&1) || (cd "$app" && go mod tidy) || fail "go mod tidy of the SQLite application failed"
got=$(cd "$app" && go list -m -f '{{.Path}} {{.Version}}' all)
for module in "${!asked[@]}"; do
  version=$(awk -v m="$module" '$1 == m {print $2}' <<<"$got")
  [ "$version" = "${asked[$module]}" ] ||
    fail "the SQLite application asked for $module ${asked[$module]} and got ${version:-nothing}: optlock's go.mod raises it"
done
(cd "$app" && CGO_ENABLED=0 go build -o /dev/null . && CGO_ENABLED=0 go vet .) ||
  fail "the SQLite application does not build at the minimum versions"
printf 'consumer-check: an SQLite application keeps the versions it asked for:'
for module in "${!asked[@]}"; do printf ' %s@%s' "$module" "${asked[$module]}"; done
printf '\n'

# 2. The PostgreSQL-only application: the packages of a main with optlock, less those of the same main
# without it.
app="$work/pgapp"
mkdir -p "$app/with" "$app/without"
cat >"$app/go.mod" <<EOF
module example.com/pgapp

go 1.22.0

require (
	github.com/go-optlock/optlock v0.0.0
	gorm.io/driver/postgres v1.6.0
	gorm.io/gorm v1.31.2
)

replace github.com/go-optlock/optlock => $repo
EOF
cat >"$app/without/main.go" <<'EOF'
package main

import (
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
)

func main() {
	if _, err := gorm.Open(postgres.Open("host=127.0.0.1"), &gorm.Config{}); err != nil {
		panic(err)
	}
}
EOF
cat >"$app/with/main.go" <<'EOF'
package main

import (
	"github.com/go-optlock/optlock"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
)

func main() {
	db, err := gorm.Open(postgres.Open("host=127.0.0.1"), &gorm.Config{})
	if err == nil {
		err = db.Use(optlock.New())
	}
	if err != nil {
		panic(err)
	}
}
EOF
(cd "$app" && go mod tidy >/dev/null 2>&1) || (cd "$app" && go mod tidy) || fail "go mod tidy of the PostgreSQL application failed"
(cd "$app" && go list -deps ./without | sort >"$work/without.txt" && go list -deps ./with | sort >"$work/with.txt")
gained=$(comm -13 "$work/without.txt" "$work/with.txt" | grep -vx 'example.com/pgapp/with' || true)
[ "$gained" = "github.com/go-optlock/optlock" ] ||
  fail "importing optlock into a PostgreSQL application adds these packages, not just optlock: $(tr '\n' ' ' <<<"$gained")"
if drivers=$(grep -E 'sqlite|mysql|testify' "$work/with.txt"); then
  fail "a PostgreSQL application with optlock builds these packages: $(tr '\n' ' ' <<<"$drivers")"
fi
(cd "$app" && go build -o /dev/null ./with) || fail "the PostgreSQL application does not build"
echo 'consumer-check: a PostgreSQL application gains one package by importing optlock: github.com/go-optlock/optlock'
