package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/hardstrap/hardstrap/charts"
	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/kube"
	"github.com/hardstrap/hardstrap/internal/pemcert"
	"github.com/hardstrap/hardstrap/internal/say"
	"github.com/hardstrap/hardstrap/internal/userfile"
	"github.com/hardstrap/hardstrap/secrets/sealing"
)

func sealCommand() *cli.Command {
	return &cli.Command{
		Name:  "seal",
		Usage: "turn a Kubernetes Secret manifest into a SealedSecret the sealed-secrets controller decrypts",
		Description: `seal encrypts each value of a Secret for the sealed-secrets controller, as kubeseal does
(same envelope, same scopes), so the result can be committed to Git. The plaintext is read
from -f FILE or standard input and is never written anywhere; the SealedSecret goes to
standard output.

The controller's certificate comes from the cluster (its /v1/cert.pem through the API
server's service proxy), or from --cert FILE for offline sealing (fetch it once with
kubeseal --fetch-cert or from the cluster). The controller is where hardstrap.yaml
(--config, default ./hardstrap.yaml when there is one) installs it:
secrets.sealedSecrets.namespace, its release name and values; --controller-namespace and
--controller-name override that.

Scopes (--scope): strict (default) binds the value to the Secret's name and namespace;
namespace-wide allows renaming within the namespace; cluster-wide allows any name and
namespace.

Examples:
   kubectl create secret generic db --from-literal=password=s3cret --dry-run=client -o yaml \
     | hardstrap seal > db-sealed.yaml
   hardstrap seal -f secret.yaml --cert sealing-cert.pem --scope namespace-wide`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Value: "-", TakesFile: true, Usage: "the Secret manifest `FILE` (YAML or JSON); - reads standard input"},
			&cli.StringFlag{Name: "scope", Value: "", Usage: "`SCOPE`: strict, namespace-wide or cluster-wide (default: the Secret's scope annotations, else strict)"},
			&cli.StringFlag{Name: "cert", TakesFile: true, Usage: "seal for the controller certificate in `FILE` (PEM) instead of fetching it from the cluster"},
			&cli.StringFlag{Name: "namespace", Aliases: []string{"n"}, Value: "default", Usage: "the `NAMESPACE` of a Secret that declares none"},
		}, append(controllerFlags(true), kubeFlags()...)...),
		OnUsageError: onUsageError,
		Action:       runSeal,
	}
}

func runSeal(c *cli.Context) error {
	if c.Args().Present() {
		return usageError{fmt.Errorf("unexpected argument %q: give the Secret with -f FILE or on standard input", c.Args().First())}
	}

	scope, err := sealing.ParseScope(c.String("scope"))
	if err != nil {
		return usageError{fmt.Errorf("--scope: %w", err)}
	}

	var in []byte

	if f := c.String("file"); f == "-" {
		in, err = userfile.ReadStream(c.App.Reader, "standard input", userfile.LimitConfig)
	} else {
		in, err = userfile.Read(f, userfile.LimitConfig)
	}

	if err != nil {
		return usageError{fmt.Errorf("read the Secret: %w", err)}
	}

	secret, err := sealing.ParseSecret(in)
	if err != nil {
		return usageError{err}
	}

	certPEM, err := sealingCert(c)
	if err != nil {
		return err
	}

	pub, err := sealing.ParseCert(certPEM)
	if err != nil {
		return err
	}

	ss, err := sealing.Seal(secret, pub, scope, c.String("namespace"))
	if err != nil {
		return err
	}

	out, err := sealing.Marshal(ss)
	if err != nil {
		return err
	}

	_, err = c.App.Writer.Write(out)

	return err
}

func sealingCert(c *cli.Context) ([]byte, error) {
	if f := c.String("cert"); f != "" {
		data, err := userfile.Read(f, userfile.LimitConfig)
		if err != nil {
			return nil, usageError{fmt.Errorf("--cert: %w", err)}
		}

		if _, _, err := pemcert.Parse(data); err != nil {
			return nil, usageError{fmt.Errorf("--cert %s: %w: pass the certificate as `kubeseal --fetch-cert` prints it", f, err)}
		}

		return data, nil
	}

	client, err := kube.New(kubeOptions(c))
	if err != nil {
		return nil, fmt.Errorf("%w (or seal offline with --cert FILE)", err)
	}

	ns, svc, err := controllerPlacement(c, true)
	if err != nil {
		return nil, err
	}

	return sealing.FetchCert(c.Context, client.Typed, ns, svc)
}

func secretsCommand() *cli.Command {
	return &cli.Command{
		Name:  "secrets",
		Usage: "keep the sealed-secrets sealing keys across cluster rebuilds",
		Subcommands: []*cli.Command{{
			Name:  "backup",
			Usage: "export the controller's sealing keys, encrypted to age recipients",
			Description: `backup reads every sealing key Secret of the sealed-secrets controller and writes them to
FILE encrypted to one or more age recipients (age1... public keys, or files of them). The
keys are read from the controller's namespace, as hardstrap.yaml (--config) places it, or
--controller-namespace. Name
FILE in hardstrap.yaml under secrets.sealedSecrets.keyBackup, with the identity that
decrypts it, and a rebuilt cluster gets the same keys back before its controller starts:
every SealedSecret in Git keeps decrypting. The keys are never written in plaintext; the
output names them by fingerprint.

Examples:
   age-keygen -o ~/.config/hardstrap/age.key     # once; keep it safe, outside the cluster
   hardstrap secrets backup --to sealing-keys.age --recipient age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p`,
			Flags: append([]cli.Flag{
				&cli.StringFlag{Name: "to", Required: true, TakesFile: true, Usage: "write the encrypted backup to `FILE` (mode 0600, replaced atomically)"},
				&cli.StringSliceFlag{Name: "recipient", Aliases: []string{"r"}, Required: true, Usage: "age `RECIPIENT` (age1...) or a file of recipients; repeat for several"},
			}, append(controllerFlags(false), kubeFlags()...)...),
			OnUsageError: onUsageError,
			Action:       runBackup,
		}},
	}
}

func runBackup(c *cli.Context) error {
	recipients, err := sealing.ParseRecipients(c.StringSlice("recipient"))
	if err != nil {
		return usageError{fmt.Errorf("--recipient: %w", err)}
	}

	ns, _, err := controllerPlacement(c, false)
	if err != nil {
		return err
	}

	client, err := kube.New(kubeOptions(c))
	if err != nil {
		return err
	}

	keys, err := sealing.ListKeys(c.Context, client.Typed, ns)
	if err != nil {
		return err
	}

	data, err := sealing.Backup(keys, recipients)
	if err != nil {
		return err
	}

	to := c.String("to")
	if err := writePrivate(to, data); err != nil {
		return fmt.Errorf("write backup %s: %w", to, err)
	}

	var fps []string

	for i := range keys {
		fp, _ := sealing.KeyFingerprint(&keys[i]) // checked by Backup
		fps = append(fps, keys[i].Name+" "+fp)
	}

	fmt.Fprintf(c.App.Writer, "Backed up %s to %s, encrypted to %s:\n  %s\n",
		say.Count(len(keys), "sealing key"), to, say.Count(len(recipients), "recipient"), strings.Join(fps, "\n  "))

	return nil
}

// writePrivate writes data to path with mode 0600 through a temporary file and a rename.
func writePrivate(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}

	_, werr := tmp.Write(data)
	cerr := tmp.Close()

	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return err
	}

	return os.Rename(tmp.Name(), path)
}

// Flags that say where the sealed-secrets controller runs.
const (
	flagConfig              = "config"
	flagControllerNamespace = "controller-namespace"
	flagControllerName      = "controller-name"
)

// controllerFlags locate the sealed-secrets controller: hardstrap.yaml, or the flags over it;
// withService adds --controller-name (its Service).
func controllerFlags(withService bool) []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{
			Name: flagConfig, TakesFile: true, EnvVars: []string{"HARDSTRAP_CONFIG"},
			Usage:       "the hardstrap config `FILE` that places the sealed-secrets controller (secrets.sealedSecrets)",
			DefaultText: config.DefaultFile + " when there is one",
		},
		&cli.StringFlag{Name: flagControllerNamespace, Usage: "`NAMESPACE` of the sealed-secrets controller and its keys", DefaultText: "from --config, else the pin's"},
	}

	if withService {
		flags = append(flags, &cli.StringFlag{Name: flagControllerName, Usage: "`NAME` of the sealed-secrets controller's Service", DefaultText: "from --config, else the pin's"})
	}

	return flags
}

// controllerPlacement returns the controller's namespace and Service: the flags when given,
// else what hardstrap.yaml installs (--config; ./hardstrap.yaml when present), else the pin's
// placement with hardstrap's default values. withService: the command needs the Service too.
func controllerPlacement(c *cli.Context, withService bool) (namespace, service string, err error) {
	var cfg *config.Cluster

	if !c.IsSet(flagControllerNamespace) || (withService && !c.IsSet(flagControllerName)) {
		file := c.String(flagConfig)
		explicit := file != ""

		if !explicit {
			file = config.DefaultFile
		}

		cfg, err = config.Load(file)

		switch {
		case err == nil:
		case !explicit && errors.Is(err, fs.ErrNotExist):
			cfg = nil // no hardstrap.yaml here: the pin's placement
		default:
			return "", "", usageError{fmt.Errorf("%w (or pass --%s)", err, flagControllerNamespace)}
		}
	}

	namespace, service, err = charts.SealedSecretsController(cfg)
	if err != nil {
		return "", "", err
	}

	if c.IsSet(flagControllerNamespace) {
		namespace = c.String(flagControllerNamespace)
	}

	if c.IsSet(flagControllerName) {
		service = c.String(flagControllerName)
	}

	return namespace, service, nil
}
