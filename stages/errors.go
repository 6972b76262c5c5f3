package stages

import (
	"errors"
	"fmt"
)

// ErrUnknownStage is returned for a --only or --skip name that is not a stage.
var ErrUnknownStage = errors.New("unknown stage")

// ErrPartiallyApplied is wrapped when a stage failed after some of its changes were made.
var ErrPartiallyApplied = errors.New("stage partially applied")

func partial(done, total int, err error) error {
	if done == 0 {
		return err
	}

	return fmt.Errorf("%w (%d of %d changes were applied before the failure; re-run to converge): %w", ErrPartiallyApplied, done, total, err)
}
