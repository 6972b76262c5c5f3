package sealing

import (
	"errors"
	"fmt"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/userfile"
)

// ReadBackup decrypts secrets.sealedSecrets.keyBackup with its age identity (identityFile,
// or the identity in the environment variable identityEnv).
func ReadBackup(c *config.Cluster) ([]corev1.Secret, error) {
	kb := c.Secrets.SealedSecrets.KeyBackup
	if kb == nil {
		return nil, errors.New("secrets.sealedSecrets.keyBackup is not set")
	}

	data, err := userfile.Read(kb.Path, userfile.LimitConfig)
	if err != nil {
		return nil, fmt.Errorf("secrets.sealedSecrets.keyBackup.path: %w", err)
	}

	var ident []byte

	switch {
	case kb.IdentityFile != "":
		if ident, err = userfile.Read(kb.IdentityFile, userfile.LimitConfig); err != nil {
			return nil, fmt.Errorf("secrets.sealedSecrets.keyBackup.identityFile: %w", err)
		}
	default:
		v, ok := os.LookupEnv(kb.IdentityEnv)
		if !ok || strings.TrimSpace(v) == "" {
			return nil, fmt.Errorf("secrets.sealedSecrets.keyBackup.identityEnv: $%s is not set: export the age identity (AGE-SECRET-KEY-1...) that decrypts %s", kb.IdentityEnv, c.Shown(kb.Path))
		}

		ident = []byte(v)
	}

	ids, err := ParseIdentities(ident)
	if err != nil {
		return nil, fmt.Errorf("secrets.sealedSecrets.keyBackup: age identity: %w", err)
	}

	keys, err := Restore(data, ids)
	if err != nil {
		return nil, fmt.Errorf("secrets.sealedSecrets.keyBackup %s: %w", c.Shown(kb.Path), err)
	}

	return keys, nil
}
