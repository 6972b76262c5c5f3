package talos

import (
	"fmt"
	"os"
	"strings"
)

// File is one file of a Batch.
type File struct {
	Path string
	Data []byte
	Mode os.FileMode
}

// Batch writes several files all or nothing, as far as a file system allows: every file is
// checked before the first is written, so a file that cannot be written stops the batch with
// nothing written. A write that still fails midway (a full disk, a file changed meanwhile)
// returns a *BatchError naming the files written and those not.
type Batch struct {
	Writer *Writer
	Files  []File

	written []WriteResult
}

// BatchError is returned when a write of a Batch fails: Written were written before it,
// NotWritten (the failing file first) were not.
type BatchError struct {
	Written    []WriteResult
	NotWritten []string
	Err        error
}

func (e *BatchError) Error() string {
	var b strings.Builder

	b.WriteString(e.Err.Error())

	if len(e.Written) == 0 {
		b.WriteString("; no file was written")
	} else {
		b.WriteString("; written before the failure: ")

		for i, r := range e.Written {
			if i > 0 {
				b.WriteString(", ")
			}

			b.WriteString(r.Path)

			if d := r.Details(); d != "" {
				fmt.Fprintf(&b, " (%s)", d)
			}
		}

		b.WriteString("; not written: " + strings.Join(e.NotWritten, ", "))
	}

	b.WriteString("; fix the cause and run again, which writes only what is left")

	return b.String()
}

func (e *BatchError) Unwrap() error { return e.Err }

// Check checks every file with Writer.Check, and stops at the first that cannot be written.
func (b *Batch) Check() error {
	for _, f := range b.Files {
		if err := b.Writer.Check(f.Path); err != nil {
			return err
		}
	}

	return nil
}

// Write writes file i, which must be the first not yet written. A failure is a *BatchError
// when the batch holds more than one file.
func (b *Batch) Write(i int) (WriteResult, error) {
	if i != len(b.written) {
		return WriteResult{}, fmt.Errorf("write %s: file %d of the batch written out of order, after %d", b.Files[i].Path, i, len(b.written))
	}

	f := b.Files[i]

	res, err := b.Writer.Write(f.Path, f.Data, f.Mode)
	if err != nil {
		if len(b.Files) == 1 {
			return res, err
		}

		e := &BatchError{Written: b.written, Err: err}
		for _, rest := range b.Files[i:] {
			e.NotWritten = append(e.NotWritten, rest.Path)
		}

		return res, e
	}

	b.written = append(b.written, res)

	return res, nil
}

// WriteAll checks every file, then writes them in order, returning what was written (also
// when a write fails midway).
func (b *Batch) WriteAll() ([]WriteResult, error) {
	if err := b.Check(); err != nil {
		return nil, fmt.Errorf("no file was written: %w", err)
	}

	for i := len(b.written); i < len(b.Files); i++ {
		if _, err := b.Write(i); err != nil {
			return b.written, err
		}
	}

	return b.written, nil
}
