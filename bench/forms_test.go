package bench

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkForms is the SQL-form study behind the checked bulk write: raw SQL, no GORM and no plugin,
// on the benchmark's own connections. Each form writes N of a table's rows (a block of consecutive
// keys, handed over in shuffled order) if their versions are still the ones given, in its own
// transaction (BEGIN, UPDATE, COMMIT), and must write all N. "unchecked-*" forms are the floor: they
// write the rows whatever their versions. Two table sizes: every row written (the table holds N
// rows), and N of 100 000 rows.
//
//	./run.sh 5 1s Forms
func BenchmarkForms(b *testing.B) {
	for _, t := range targets(b) {
		b.Run(t.name, func(b *testing.B) {
			conn, err := t.db.DB()
			must(b, err)
			for _, size := range []struct {
				name string
				rows func(n int) int
			}{
				{"table=N", func(n int) int { return n }},
				{"table=100000", func(int) int { return 100_000 }},
			} {
				b.Run(size.name, func(b *testing.B) {
					for _, n := range []int{1000, 10000} {
						b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
							study := newFormStudy(b, conn, t.name, size.rows(n), n)
							for _, f := range formsFor(t.name) {
								b.Run(f.name, func(b *testing.B) {
									vacuum(b, t, formTable)
									b.ReportAllocs()
									b.ResetTimer()
									for range b.N {
										study.write(b, f)
									}
								})
							}
						})
					}
				})
			}
		})
	}
}

// formStudy is one table and the block of rows every form writes, with the versions as stored.
type formStudy struct {
	conn     *sql.DB
	keys     []int64 // shuffled
	versions []int64 // versions[i] is stored for keys[i]
}

const formTable = "bench_form_items"

func newFormStudy(b *testing.B, conn *sql.DB, dialect string, rows, n int) *formStudy {
	b.Helper()
	exec := func(q string) {
		_, err := conn.Exec(q)
		must(b, err)
	}
	exec("DROP TABLE IF EXISTS " + formTable)
	key := "INTEGER PRIMARY KEY"
	switch dialect {
	case "postgres":
		key = "bigserial PRIMARY KEY"
	case "mysql":
		key = "bigint unsigned AUTO_INCREMENT PRIMARY KEY"
	}
	// Shaped as GORM's AutoMigrate makes it: version may be NULL.
	exec("CREATE TABLE " + formTable + " (id " + key + ", name text, qty bigint, version bigint)")
	b.Cleanup(func() { _, _ = conn.Exec("DROP TABLE IF EXISTS " + formTable) })
	for start := 0; start < rows; start += 1000 {
		var sb strings.Builder
		sb.WriteString("INSERT INTO " + formTable + " (name, qty, version) VALUES ")
		for i := start; i < min(start+1000, rows); i++ {
			if i > start {
				sb.WriteByte(',')
			}
			sb.WriteString("('item', 1, 1)")
		}
		exec(sb.String())
	}
	switch dialect {
	case "postgres":
		exec("VACUUM ANALYZE " + formTable)
	case "mysql":
		exec("ANALYZE TABLE " + formTable)
	default:
		exec("ANALYZE " + formTable)
	}
	first := int64(rows/2 - n/2 + 1) // a block in the middle of the table
	s := &formStudy{conn: conn, keys: make([]int64, n), versions: make([]int64, n)}
	for i := range s.keys {
		s.keys[i], s.versions[i] = first+int64(i), 1
	}
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(n, func(i, j int) { s.keys[i], s.keys[j] = s.keys[j], s.keys[i] })
	return s
}

// write runs one form once and checks that it wrote every row.
func (s *formStudy) write(b *testing.B, f form) {
	query, args := f.build(s.keys, s.versions)
	tx, err := s.conn.BeginTx(context.Background(), nil)
	must(b, err)
	res, err := tx.Exec(query, args...)
	if err != nil {
		_ = tx.Rollback()
		b.Fatalf("%s: %v", f.name, err)
	}
	if got, _ := res.RowsAffected(); got != int64(len(s.keys)) {
		_ = tx.Rollback()
		b.Fatalf("%s wrote %d rows, want %d", f.name, got, len(s.keys))
	}
	must(b, tx.Commit())
	for i := range s.versions {
		s.versions[i]++
	}
}

// form builds one statement that writes the given rows.
type form struct {
	name  string
	build func(keys, versions []int64) (string, []any)
}

const formSet = "UPDATE " + formTable + " SET qty = qty + 1, version = version + 1"

func formsFor(dialect string) []form {
	switch dialect {
	case "postgres":
		return []form{
			{"unchecked-id-in-list", func(keys, _ []int64) (string, []any) {
				return formSet + " WHERE id IN (" + placeholders(1, len(keys), true) + ")", int64Args(keys)
			}},
			{"unchecked-id-any-array", func(keys, _ []int64) (string, []any) {
				return formSet + " WHERE id = ANY(CAST(CAST($1 AS text) AS bigint[]))", []any{intArray(keys)}
			}},
			{"checked-keyorder-lock+in-unnest", func(keys, versions []int64) (string, []any) {
				return formSet + " WHERE " + pgKeyOrderLock + " AND (id, version) IN (SELECT * FROM unnest(" +
					"CAST(CAST($2 AS text) AS bigint[]), CAST(CAST($3 AS text) AS bigint[])))", pgArrays(keys, versions)
			}},
			{"checked-keyorder-lock+from-unnest", func(keys, versions []int64) (string, []any) {
				return "UPDATE " + formTable + " AS t SET qty = t.qty + 1, version = t.version + 1 FROM unnest(" +
					"CAST(CAST($2 AS text) AS bigint[]), CAST(CAST($3 AS text) AS bigint[])) AS s(k, v) WHERE " +
					pgKeyOrderLock +
					" AND t.id = s.k AND t.version = s.v", pgArrays(keys, versions)
			}},
			{"checked-keyorder-nokeylock+in-unnest", func(keys, versions []int64) (string, []any) {
				return formSet + " WHERE " + strings.Replace(pgKeyOrderLock, "FOR UPDATE", "FOR NO KEY UPDATE", 1) +
					" AND (id, version) IN (SELECT * FROM unnest(CAST(CAST($2 AS text) AS bigint[]), " +
					"CAST(CAST($3 AS text) AS bigint[])))", pgArrays(keys, versions)
			}},
			// The lock pass hands the update the locked rows' addresses: the update finds them by TID
			// instead of a second descent of the primary key.
			{"checked-keyorder-lock-ctid+in-unnest", func(keys, versions []int64) (string, []any) {
				return formSet + " WHERE ctid = ANY(ARRAY(SELECT ctid FROM " + formTable +
					" WHERE id = ANY(CAST(CAST($1 AS text) AS bigint[])) ORDER BY id FOR UPDATE))" +
					" AND (id, version) IN (SELECT * FROM unnest(CAST(CAST($2 AS text) AS bigint[]), " +
					"CAST(CAST($3 AS text) AS bigint[])))", pgArrays(keys, versions)
			}},
			{"checked-sorted-from-unnest-no-lock", func(keys, versions []int64) (string, []any) {
				k, v := sortedPairs(keys, versions)
				return "UPDATE " + formTable + " AS t SET qty = t.qty + 1, version = t.version + 1 FROM unnest(" +
					"CAST(CAST($1 AS text) AS bigint[]), CAST(CAST($2 AS text) AS bigint[])) AS s(k, v) " +
					"WHERE t.id = s.k AND t.version = s.v", []any{intArray(k), intArray(v)}
			}},
		}
	case "mysql":
		return []form{
			{"unchecked-id-in-list", func(keys, _ []int64) (string, []any) {
				return formSet + " WHERE id IN (" + placeholders(1, len(keys), false) + ")", int64Args(keys)
			}},
			{"checked-row-value-in", func(keys, versions []int64) (string, []any) {
				return formSet + " WHERE (id, version) IN (" + pairPlaceholders(len(keys)) + ")", pairArgs(keys, versions)
			}},
			// Integers written into the SQL as literals: no parameters to prepare and send, one round
			// trip instead of prepare, execute and close.
			{"unchecked-id-in-literals", func(keys, _ []int64) (string, []any) {
				return formSet + " WHERE id IN (" + intLiterals(keys) + ")", nil
			}},
			{"checked-row-value-in-literals", func(keys, versions []int64) (string, []any) {
				return formSet + " WHERE (id, version) IN (" + pairLiterals(keys, versions) + ")", nil
			}},
			// The same with one parameter in SET: prepared, as a write with values is.
			{"checked-row-value-in-literals+set-param", func(keys, versions []int64) (string, []any) {
				return "UPDATE " + formTable + " SET qty = qty + ?, version = version + 1 WHERE (id, version) IN (" +
					pairLiterals(keys, versions) + ")", []any{1}
			}},
			{"checked-sorted-join-json-table", func(keys, versions []int64) (string, []any) {
				k, v := sortedPairs(keys, versions)
				return "UPDATE " + formTable + " AS t JOIN JSON_TABLE(?, '$[*]' COLUMNS(k BIGINT PATH '$[0]', " +
					"v BIGINT PATH '$[1]')) AS s ON t.id = s.k AND t.version = s.v SET t.qty = t.qty + 1, " +
					"t.version = t.version + 1", []any{jsonPairs(k, v)}
			}},
		}
	default:
		return []form{
			{"unchecked-id-in-list", func(keys, _ []int64) (string, []any) {
				return formSet + " WHERE id IN (" + placeholders(1, len(keys), false) + ")", int64Args(keys)
			}},
			{"checked-in-json-each", func(keys, versions []int64) (string, []any) {
				obj := jsonObject(keys, versions)
				return formSet + " WHERE id IN (SELECT CAST(key AS INTEGER) FROM json_each(?)) AND (id, version) IN " +
					"(SELECT CAST(key AS INTEGER), value FROM json_each(?))", []any{obj, obj}
			}},
			{"checked-from-json-each", func(keys, versions []int64) (string, []any) {
				return formSet + " FROM json_each(?) AS j WHERE " + formTable + ".id = j.key AND " + formTable + ".version = j.value", []any{jsonObject(keys, versions)}
			}},
			{"checked-sorted-from-json-each", func(keys, versions []int64) (string, []any) {
				k, v := sortedPairs(keys, versions)
				return formSet + " FROM json_each(?) AS j WHERE " + formTable + ".id = j.key AND " + formTable + ".version = j.value", []any{jsonObject(k, v)}
			}},
			{"checked-sorted-from-renamed-json-each", func(keys, versions []int64) (string, []any) {
				k, v := sortedPairs(keys, versions)
				return formSet + " FROM (SELECT CAST(key AS INTEGER) AS k, value AS v FROM json_each(?)) AS j " +
					"WHERE " + formTable + ".id = j.k AND " + formTable + ".version = j.v", []any{jsonObject(k, v)}
			}},
			{"checked-sorted-from-values", func(keys, versions []int64) (string, []any) {
				k, v := sortedPairs(keys, versions)
				return formSet + " FROM (VALUES " + pairPlaceholders(len(k)) + ") AS j WHERE id = j.column1 AND " +
					"version = j.column2", pairArgs(k, v)
			}},
		}
	}
}

const pgKeyOrderLock = "id = ANY(ARRAY(SELECT id FROM " + formTable +
	" WHERE id = ANY(CAST(CAST($1 AS text) AS bigint[])) ORDER BY id FOR UPDATE))"

func pgArrays(keys, versions []int64) []any {
	k := intArray(keys)
	return []any{k, k, intArray(versions)}
}

func sortedPairs(keys, versions []int64) ([]int64, []int64) {
	order := make([]int, len(keys))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return int(keys[a] - keys[b]) })
	k, v := make([]int64, len(keys)), make([]int64, len(keys))
	for i, j := range order {
		k[i], v[i] = keys[j], versions[j]
	}
	return k, v
}

func placeholders(first, n int, numbered bool) string {
	var sb strings.Builder
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		if numbered {
			sb.WriteString("$" + strconv.Itoa(first+i))
		} else {
			sb.WriteByte('?')
		}
	}
	return sb.String()
}

func pairPlaceholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("(?,?),", n), ",")
}

func int64Args(v []int64) []any {
	out := make([]any, len(v))
	for i := range v {
		out[i] = v[i]
	}
	return out
}

func pairArgs(keys, versions []int64) []any {
	out := make([]any, 0, 2*len(keys))
	for i := range keys {
		out = append(out, keys[i], versions[i])
	}
	return out
}

// intArray is a PostgreSQL array in its text form, which the server parses.
func intArray(v []int64) string {
	return list('{', '}', len(v), func(sb *strings.Builder, i int) { sb.WriteString(strconv.FormatInt(v[i], 10)) })
}

// intLiterals is "1,2,3": integers written into the SQL.
func intLiterals(v []int64) string {
	return strings.Trim(list(' ', ' ', len(v), func(sb *strings.Builder, i int) { sb.WriteString(strconv.FormatInt(v[i], 10)) }), " ")
}

// pairLiterals is "(1,7),(2,7)".
func pairLiterals(keys, versions []int64) string {
	return strings.Trim(list(' ', ' ', len(keys), func(sb *strings.Builder, i int) {
		sb.WriteString("(" + strconv.FormatInt(keys[i], 10) + "," + strconv.FormatInt(versions[i], 10) + ")")
	}), " ")
}

// jsonPairs is [[key, version], ...].
func jsonPairs(keys, versions []int64) string {
	return list('[', ']', len(keys), func(sb *strings.Builder, i int) {
		sb.WriteString("[" + strconv.FormatInt(keys[i], 10) + "," + strconv.FormatInt(versions[i], 10) + "]")
	})
}

// jsonObject is {"key": version, ...}.
func jsonObject(keys, versions []int64) string {
	return list('{', '}', len(keys), func(sb *strings.Builder, i int) {
		sb.WriteString(`"` + strconv.FormatInt(keys[i], 10) + `":` + strconv.FormatInt(versions[i], 10))
	})
}

// list writes n items between open and close, with commas between.
func list(open, close byte, n int, item func(sb *strings.Builder, i int)) string {
	var sb strings.Builder
	sb.Grow(n * 16)
	sb.WriteByte(open)
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		item(&sb, i)
	}
	sb.WriteByte(close)
	return sb.String()
}
