package tests

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// typStampsIn reads the stamps of table as another process sees them, by ID.
func typStampsIn(t *testing.T, c configured, table string) map[uint]TypStamp {
	t.Helper()
	var rows []TypStamp
	require.NoError(t, c.observer.Table(table).Unscoped().Order("id").Find(&rows).Error)
	byID := make(map[uint]TypStamp, len(rows))
	for _, r := range rows {
		byID[r.ID] = r
	}
	return byID
}

// TestPostgresSchemaQualifiedTable: a table named with its schema (Table("s.t"), or a TableName with
// a schema) has its column types read from that table, not from a same-named table elsewhere in the
// search path with other types (here public's, a timestamp(0) without time zone); each is cached apart.
func TestPostgresSchemaQualifiedTable(t *testing.T) {
	d := dialects[1]
	c := openTyped(t, d, &gorm.Config{}, nil, optlock.Guard(&TypStamp{}))
	typCleanup(t, c, `DROP SCHEMA IF EXISTS typ_schema CASCADE`)
	typExec(t, c, `DROP SCHEMA IF EXISTS typ_schema CASCADE`, `CREATE SCHEMA typ_schema`)
	typTables(t, c, &TypStamp{})
	typExec(t, c, `ALTER TABLE typ_stamps ALTER COLUMN updated_at TYPE timestamp(0)`)
	require.NoError(t, c.observer.Table("typ_schema.typ_stamps").AutoMigrate(&TypStamp{}))
	for _, table := range []string{"typ_schema.typ_stamps", "typ_stamps"} {
		for _, path := range typStampPaths {
			t.Run(table+"/"+path.name, func(t *testing.T) {
				typExec(t, c, `TRUNCATE typ_stamps, typ_schema.typ_stamps`)
				fresh := []TypStamp{{Body: "a"}, {Body: "b"}, {Body: "c"}}
				require.NoError(t, c.db.Table(table).Create(&fresh).Error)
				require.NoError(t, path.write(c.db.Table(table), &fresh).Error, "a freshly created row")
				requireStampsIn(t, c, table, fresh, path.deletes)

				var read []TypStamp
				typExec(t, c, `UPDATE `+table+` SET deleted_at = NULL, body = 'y'`)
				require.NoError(t, c.db.Table(table).Order("id").Find(&read).Error)
				typExec(t, c, fmt.Sprintf(`UPDATE %s SET updated_at = updated_at + interval '1 second' WHERE id = %d`, table, read[0].ID))
				before := typStampsIn(t, c, table)
				stale := append([]TypStamp(nil), read...)
				requireConflict(t, path.write(c.db.Table(table), &stale).Error, read[0].ID)
				assert.Equal(t, before, typStampsIn(t, c, table), "nothing written")
				c.requireIdle(t)
			})
		}
	}
}

func requireStampsIn(t *testing.T, c configured, table string, rows []TypStamp, deleted bool) {
	t.Helper()
	stored := typStampsIn(t, c, table)
	for _, r := range rows {
		got, ok := stored[r.ID]
		require.True(t, ok, "row %d is in %s", r.ID, table)
		if deleted {
			assert.True(t, got.DeletedAt.Valid, "row %d soft-deleted", r.ID)
			continue
		}
		assert.Equal(t, r.Body, got.Body)
		assert.True(t, sameStamp(table == "typ_stamps", r.UpdatedAt, got.UpdatedAt), "row %d updated_at: struct %v, stored %v", r.ID, r.UpdatedAt, got.UpdatedAt)
	}
	c.requireIdle(t)
}

// TypSchemaStamp names its schema in TableName.
type TypSchemaStamp struct {
	gorm.Model
	Body string
}

func (TypSchemaStamp) TableName() string { return "typ_schema.typ_stamps" }

// TestPostgresSchemaInTableName: the same with the schema in the model's TableName.
func TestPostgresSchemaInTableName(t *testing.T) {
	d := dialects[1]
	c := openTyped(t, d, &gorm.Config{}, nil, optlock.Guard(&TypSchemaStamp{}))
	typCleanup(t, c, `DROP SCHEMA IF EXISTS typ_schema CASCADE`)
	typExec(t, c, `DROP SCHEMA IF EXISTS typ_schema CASCADE`, `CREATE SCHEMA typ_schema`)
	typTables(t, c, &TypStamp{}, &TypSchemaStamp{})
	typExec(t, c, `ALTER TABLE public.typ_stamps ALTER COLUMN updated_at TYPE timestamp(0)`)
	fresh := []TypSchemaStamp{{Body: "a"}, {Body: "b"}}
	require.NoError(t, c.db.Create(&fresh).Error)
	for i := range fresh {
		fresh[i].Body = "written"
	}
	require.NoError(t, optlock.UpdateEach(c.db, &fresh, "body").Error)
	require.NoError(t, c.db.Model(&fresh[0]).Update("body", "again").Error)
	var stored []TypSchemaStamp
	require.NoError(t, c.observer.Order("id").Find(&stored).Error)
	require.Len(t, stored, 2)
	assert.Equal(t, "again", stored[0].Body)
	assert.True(t, stored[0].UpdatedAt.Equal(fresh[0].UpdatedAt))
	assert.Equal(t, "written", stored[1].Body)
	assert.True(t, stored[1].UpdatedAt.Equal(fresh[1].UpdatedAt))
	c.requireIdle(t)
}

// TypUUIDItem has a string key that the table stores as it likes (uuid, char(36)).
type TypUUIDItem struct {
	ID      string `gorm:"primaryKey"`
	Qty     int
	Version int64
}

func (TypUUIDItem) TableName() string { return "typ_keyed" }

// TypGoogleUUIDItem has a uuid.UUID key.
type TypGoogleUUIDItem struct {
	ID      uuid.UUID `gorm:"primaryKey"`
	Qty     int
	Version int64
}

func (TypGoogleUUIDItem) TableName() string { return "typ_keyed" }

// TypBytesItem has a []byte key (MySQL binary(16), PostgreSQL bytea).
type TypBytesItem struct {
	ID      []byte `gorm:"primaryKey"`
	Qty     int
	Version int64
}

func (TypBytesItem) TableName() string { return "typ_keyed" }

// keyedPaths are the bulk write paths over a slice of rows whose Qty the path sets to 7.
func keyedWrite[T any](name string, db *gorm.DB, rows *[]T, setQty func(*T)) error {
	switch name {
	case "bulk UpdateSafely":
		return optlock.UpdateSafely(db, rows, map[string]any{"qty": 7}).Error
	case "bulk UpdateSafely chunked":
		return optlock.UpdateSafely(db, rows, map[string]any{"qty": 7}).Error
	case "UpdateEach":
		for i := range *rows {
			setQty(&(*rows)[i])
		}
		return optlock.UpdateEach(db, rows, "qty").Error
	case "WithLock Updates":
		return db.Scopes(optlock.WithLock()).Model(rows).Updates(map[string]any{"qty": 7}).Error
	case "single row UpdateSafely":
		*rows = (*rows)[:1]
		return optlock.UpdateSafely(db, &(*rows)[0], map[string]any{"qty": 7}).Error
	case "bulk Delete":
		return db.Scopes(optlock.WithLock()).Delete(rows).Error
	}
	panic(name)
}

var keyedPaths = []string{"bulk UpdateSafely", "bulk UpdateSafely chunked", "UpdateEach", "WithLock Updates", "single row UpdateSafely", "bulk Delete"}

// TestHandMadeKeyTypes: keys whose column type is not what GORM would create (uuid for a string or a
// uuid.UUID, char(n) for a string, binary(16) for []byte) work on every path: the rows are written
// exactly, and a stale row is refused by key with nothing written.
func TestHandMadeKeyTypes(t *testing.T) {
	type table struct{ name, postgres, mysql string }
	cases := []struct {
		name  string
		table table
		run   func(t *testing.T, c configured, path string)
	}{
		{"uuid column, string key", table{"uuid", `CREATE TABLE typ_keyed (id uuid PRIMARY KEY, qty bigint, version bigint)`, `CREATE TABLE typ_keyed (id char(36) PRIMARY KEY, qty bigint, version bigint)`},
			func(t *testing.T, c configured, path string) {
				rows := []TypUUIDItem{{ID: uuid.NewString(), Version: 1}, {ID: uuid.NewString(), Version: 1}, {ID: uuid.NewString(), Version: 1}}
				runKeyed(t, c, path, rows, func(r *TypUUIDItem) { r.Qty = 7 }, func(r TypUUIDItem) any { return r.ID }, func(r *TypUUIDItem) *int64 { return &r.Version })
			}},
		{"uuid column, uuid.UUID key", table{"uuid", `CREATE TABLE typ_keyed (id uuid PRIMARY KEY, qty bigint, version bigint)`, `CREATE TABLE typ_keyed (id char(36) PRIMARY KEY, qty bigint, version bigint)`},
			func(t *testing.T, c configured, path string) {
				rows := []TypGoogleUUIDItem{{ID: uuid.New(), Version: 1}, {ID: uuid.New(), Version: 1}, {ID: uuid.New(), Version: 1}}
				runKeyed(t, c, path, rows, func(r *TypGoogleUUIDItem) { r.Qty = 7 }, func(r TypGoogleUUIDItem) any { return r.ID }, func(r *TypGoogleUUIDItem) *int64 { return &r.Version })
			}},
		{"char(8) column, string key", table{"char", `CREATE TABLE typ_keyed (id char(8) PRIMARY KEY, qty bigint, version bigint)`, `CREATE TABLE typ_keyed (id char(8) PRIMARY KEY, qty bigint, version bigint)`},
			func(t *testing.T, c configured, path string) {
				rows := []TypUUIDItem{{ID: "ab", Version: 1}, {ID: "cd", Version: 1}, {ID: "efgh", Version: 1}}
				runKeyed(t, c, path, rows, func(r *TypUUIDItem) { r.Qty = 7 }, func(r TypUUIDItem) any { return r.ID }, func(r *TypUUIDItem) *int64 { return &r.Version })
			}},
		{"binary(16) column, []byte key", table{"bytes", `CREATE TABLE typ_keyed (id bytea PRIMARY KEY, qty bigint, version bigint)`, `CREATE TABLE typ_keyed (id binary(16) PRIMARY KEY, qty bigint, version bigint)`},
			func(t *testing.T, c configured, path string) {
				key := func(b byte) []byte { k := make([]byte, 16); k[0], k[1] = 0xff, b; return k }
				rows := []TypBytesItem{{ID: key(1), Version: 1}, {ID: key(2), Version: 1}, {ID: key(0xfe), Version: 1}}
				runKeyed(t, c, path, rows, func(r *TypBytesItem) { r.Qty = 7 }, func(r TypBytesItem) any { return r.ID }, func(r *TypBytesItem) *int64 { return &r.Version })
			}},
	}
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			for _, tc := range cases {
				for _, path := range keyedPaths {
					t.Run(tc.name+"/"+path, func(t *testing.T) {
						var opts []optlock.Option
						if path == "bulk UpdateSafely chunked" {
							opts = append(opts, optlock.WithBindVarLimit(8))
						}
						c := openTyped(t, d, &gorm.Config{}, nil, opts...)
						typCleanup(t, c, `DROP TABLE IF EXISTS typ_keyed`)
						typExec(t, c, `DROP TABLE IF EXISTS typ_keyed`)
						switch d.name {
						case "postgres":
							typExec(t, c, tc.table.postgres)
						case "mysql":
							typExec(t, c, tc.table.mysql)
						default:
							typExec(t, c, `CREATE TABLE typ_keyed (id blob PRIMARY KEY, qty integer, version integer)`)
						}
						tc.run(t, c, path)
					})
				}
			}
		})
	}
}

// runKeyed seeds rows, reads them back through the caller, writes them by path and checks what was
// stored; then makes the last row stale and checks the refusal.
func runKeyed[T any](t *testing.T, c configured, path string, seed []T, setQty func(*T), id func(T) any, version func(*T) *int64) {
	t.Helper()
	require.NoError(t, c.observer.Create(&seed).Error)
	var read []T
	require.NoError(t, c.db.Order("id").Find(&read).Error)
	require.Len(t, read, len(seed))
	rows := append([]T(nil), read...)
	require.NoError(t, keyedWrite(path, c.db, &rows, setQty))
	c.requireIdle(t)
	var stored []T
	require.NoError(t, c.observer.Order("id").Find(&stored).Error)
	if path == "bulk Delete" {
		assert.Empty(t, stored, "deleted")
		return
	}
	byID := map[string]T{}
	for _, s := range stored {
		byID[fmt.Sprint(id(s))] = s
	}
	for _, r := range rows {
		assert.Equal(t, r, byID[fmt.Sprint(id(r))], "committed exactly as the struct says")
		assert.EqualValues(t, 2, *version(&r))
	}

	// A stale row: another writer moved the last one on.
	require.NoError(t, c.db.Order("id").Find(&read).Error)
	last := read[len(read)-1]
	require.NoError(t, c.observer.Model(&last).Session(&gorm.Session{SkipHooks: true}).UpdateColumn("version", 9).Error)
	require.NoError(t, c.observer.Order("id").Find(&stored).Error)
	stale := append([]T(nil), read...)
	want := id(last)
	if path == "single row UpdateSafely" {
		stale = []T{read[len(read)-1]}
	}
	err := keyedWrite(path, c.db, &stale, setQty)
	lockErr := requireConflictOf(t, err)
	require.Len(t, lockErr.ConflictIDs, 1)
	assert.Equal(t, fmt.Sprint(want), fmt.Sprint(lockErr.ConflictIDs[0]), "the stale row is named")
	var after []T
	require.NoError(t, c.observer.Order("id").Find(&after).Error)
	assert.Equal(t, stored, after, "nothing written")
	c.requireIdle(t)
}

func requireConflictOf(t *testing.T, err error) *optlock.OptimisticLockError {
	t.Helper()
	require.ErrorIs(t, err, optlock.ErrConflict)
	var lockErr *optlock.OptimisticLockError
	require.True(t, errors.As(err, &lockErr), "got %T (%v)", err, err)
	return lockErr
}

// TypMoodItem has a mixed-case column of its own enum type.
type TypMoodItem struct {
	ID      uint   `gorm:"primaryKey"`
	Mood    string `gorm:"column:Mood"`
	Version int64
}

func (TypMoodItem) TableName() string { return "typ_moods" }

// TestPostgresEnumColumnTypes: UpdateEach casts a mixed-case column of a mixed-case enum type to that
// type, quoted; a type whose name quoting could not keep intact is refused with ErrInvalidLock,
// nothing written, never built into SQL.
func TestPostgresEnumColumnTypes(t *testing.T) {
	cases := []struct {
		name, typ string
		refused   bool
	}{
		{"mixed-case enum", `"TypMood"`, false},
		{"lower-case enum", `typ_mood`, false},
		{"name with a dot and a quote", `"typ_odd.""mood"`, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := openTyped(t, dialects[1], &gorm.Config{}, nil)
			typCleanup(t, c, `DROP TABLE IF EXISTS typ_moods`, `DROP TYPE IF EXISTS `+tc.typ)
			typExec(t, c, `DROP TABLE IF EXISTS typ_moods`, `DROP TYPE IF EXISTS `+tc.typ,
				`CREATE TYPE `+tc.typ+` AS ENUM ('ok', 'sad')`,
				`CREATE TABLE typ_moods (id bigserial PRIMARY KEY, "Mood" `+tc.typ+`, version bigint)`)
			seed := []TypMoodItem{{Mood: "ok", Version: 1}, {Mood: "ok", Version: 1}}
			require.NoError(t, c.observer.Create(&seed).Error)
			rows := append([]TypMoodItem(nil), seed...)
			for i := range rows {
				rows[i].Mood = "sad"
			}
			before := append([]TypMoodItem(nil), rows...)
			err := optlock.UpdateEach(c.db, &rows, "Mood").Error
			var stored []TypMoodItem
			require.NoError(t, c.observer.Order("id").Find(&stored).Error)
			c.requireIdle(t)
			if tc.refused {
				require.ErrorIs(t, err, optlock.ErrInvalidLock)
				assert.Equal(t, seed, stored, "nothing written")
				assert.Equal(t, before, rows, "the structs are as they were")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, rows, stored, "committed exactly as the structs say")
		})
	}
}
