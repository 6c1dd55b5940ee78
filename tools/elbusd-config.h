/* SPDX-License-Identifier: MIT */
#pragma once

#include <elbus/elbus.h>

G_BEGIN_DECLS

/*
 * ElbusdLimit:
 *
 * The broker settings that both the command line and the `[elbusd]` group
 * of the configuration file set. Each one is the [class@Elbus.Broker]
 * property of the same name, and the option `--NAME` and the key `NAME`;
 * the property's range and default are the only ones.
 */
typedef enum {
  ELBUSD_LIMIT_TIMEOUT,
  ELBUSD_LIMIT_BUF_SIZE,
  ELBUSD_LIMIT_BUF_TTL,
  ELBUSD_LIMIT_QUEUE_SIZE,
  ELBUSD_LIMIT_MAX_QUEUE_BYTES,
  ELBUSD_LIMIT_MAX_CLIENTS,
  ELBUSD_LIMIT_MAX_SUBSCRIPTIONS,
  ELBUSD_LIMIT_MAX_FRAME_SIZE,
  ELBUSD_LIMIT_HANDSHAKE_TIMEOUT,
  ELBUSD_N_LIMITS
} ElbusdLimit;

/* A set of limits, each given or not. Values are kept as doubles: the
 * unsigned ones fit exactly. */
typedef struct {
  gboolean set[ELBUSD_N_LIMITS];
  double value[ELBUSD_N_LIMITS];
} ElbusdLimits;

const char *elbusd_limit_get_name      (ElbusdLimit          limit);
gboolean    elbusd_limit_lookup        (const char          *name,
                                        ElbusdLimit         *limit);
gboolean    elbusd_limit_parse         (ElbusdLimit          limit,
                                        const char          *text,
                                        double              *value,
                                        GError             **error);
double      elbusd_limit_get_default   (ElbusdLimit          limit);

/* Sets every limit on @broker: from @first where given there, else from
 * @second (nullable) where given there, else the property's default;
 * except that a handshake-timeout given in neither is the timeout in
 * force, as in the original elbusd. */
void        elbusd_limits_apply        (const ElbusdLimits  *first,
                                        const ElbusdLimits  *second,
                                        ElbusBroker         *broker);

/*
 * ElbusdTlsFile:
 *
 * Which of the two files an error of elbusd_tls_certificate_load() is
 * about: the certificate's or the key's.
 */
typedef enum {
  ELBUSD_TLS_FILE_CERTIFICATE,
  ELBUSD_TLS_FILE_KEY,
} ElbusdTlsFile;

/* The certificate wss:// listeners present, as the keys tls-certificate
 * and tls-key, or the options --tls-certificate and --tls-key, name it:
 * @certificate_setting and @key_setting are those names, which the error
 * messages begin with. */
GTlsCertificate *elbusd_tls_certificate_load      (const char       *certificate_file,
                                                   const char       *key_file,
                                                   const char       *certificate_setting,
                                                   const char       *key_setting,
                                                   ElbusdTlsFile    *culprit,
                                                   GError          **error);
gboolean         elbusd_tls_certificate_check_key (GTlsCertificate  *certificate,
                                                   const char       *certificate_file,
                                                   const char       *key_file,
                                                   const char       *certificate_setting,
                                                   GError          **error);

/*
 * ElbusdConfigFlags:
 * @ELBUSD_CONFIG_NONE: the file as it is
 * @ELBUSD_CONFIG_TLS_ELSEWHERE: the TLS certificate comes from elsewhere
 *   (elbusd's --tls-certificate): `tls-certificate` and `tls-key` are
 *   checked as keys but their files are not read, and a `wss://` listener
 *   does not need them
 */
typedef enum {
  ELBUSD_CONFIG_NONE = 0,
  ELBUSD_CONFIG_TLS_ELSEWHERE = 1 << 0,
} ElbusdConfigFlags;

/*
 * ElbusdConfig:
 *
 * A configuration file, parsed and checked: nothing in it can fail to
 * apply any more (listeners excepted, which are opened by elbusd; and
 * whether the TLS key belongs to the certificate is asked apart, by
 * elbusd_config_check_tls_key()).
 */
typedef struct {
  char *path;             /* (owned): the file, as given */
  char **listen;          /* (owned) (nullable): `listen`, paths made absolute; NULL when absent */
  char *pid_file;         /* (owned) (nullable): `pid-file`, absolute */
  gboolean verbose;       /* `verbose` */
  gboolean log_syslog;    /* `log-syslog` */
  gboolean force_register; /* `force-register` */
  char *tls_certificate_file; /* (owned) (nullable): `tls-certificate`, absolute */
  char *tls_key_file;     /* (owned) (nullable): `tls-key`, absolute */
  GTlsCertificate *tls_certificate; /* (owned) (nullable): loaded from those;
                                     * NULL with ELBUSD_CONFIG_TLS_ELSEWHERE */
  guint tls_certificate_line; /* where tls-certificate is, for messages */
  ElbusdLimits limits;    /* the limit keys that are present */
  GHashTable *policy;     /* (owned) (nullable): primary name → ElbusClientPolicy;
                           * NULL when the file has no [client …] group */
} ElbusdConfig;

ElbusdConfig *elbusd_config_load           (const char          *path,
                                            ElbusdConfigFlags    flags,
                                            GError             **error);
ElbusdConfig *elbusd_config_load_data      (const char          *path,
                                            const char          *text,
                                            gsize                length,
                                            ElbusdConfigFlags    flags,
                                            GError             **error);
void          elbusd_config_free           (ElbusdConfig        *config);
guint         elbusd_config_count_clients  (const ElbusdConfig  *config);
gboolean      elbusd_config_allows_name    (const ElbusdConfig  *config,
                                            const char          *name);
void          elbusd_config_apply_policy   (const ElbusdConfig  *config,
                                            ElbusBroker         *broker);
gboolean      elbusd_config_check_tls_key  (const ElbusdConfig  *config,
                                            GError             **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ElbusdConfig, elbusd_config_free)

G_END_DECLS
