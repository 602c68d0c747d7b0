#!/bin/sh
# The start-up check of every service in docker-compose.yaml that receives a secret. It is the
# service's entrypoint: it checks the secrets it finds in the environment and only then execs
# the service's own command (same process, so signals and the exit code are the service's).
#
#   check-secrets COMMAND [ARG...]
#
# A secret is refused when it is empty, still the .env.example placeholder ("change-me..."),
# shorter than its kind needs, or not of its form. Every bad one is named by its .env variable
# (the one to fix); then the check exits 78 (EX_CONFIG) and nothing starts. Values are never
# printed.
#
# The table at the bottom is where secrets travel: a variable a service may receive, the kind of
# check, and the .env variable it comes from. A variable absent from the environment is not this
# service's secret and is skipped; tests/deploy/test_compose.py checks that every secret
# docker-compose.yaml hands to a service is covered by a line of the table.
#
# POSIX sh and shell built-ins only: it also runs in the postgres, minio and minio/mc images.

# Characters allowed in passwords, keys and names: the values end up inside connection URLs and
# a JSON connection, where anything else would need escaping (.env.example says the same).
SAFE=abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-
# A Fernet key is url-safe base64; cryptography also accepts standard base64's '+' and '/'.
# ('-' stays last: inside [...] anywhere else it would make a range.)
BASE64=+/$SAFE

refuse() {  # SOURCE VARIABLE REASON
    printf 'check-secrets: %s %s (this service receives it in %s)\n' "$1" "$3" "$2" >&2
    problems=$((problems + 1))
}

# One value. Kinds: name (a user or access key id, at least 3 characters), password (at least
# 16), signing-key (at least 64: HS512 keys must be as long as the hash, RFC 7518 section 3.2),
# fernet (one or more comma-separated Fernet keys), webhook (optional, else an https:// URL).
check_value() {  # KIND SOURCE VARIABLE VALUE
    case $4 in
        '')
            [ "$1" = webhook ] || refuse "$2" "$3" "is empty: set it in .env"
            return ;;
        change-me*)
            refuse "$2" "$3" "is still the .env.example placeholder (change-me-...): set a real value in .env"
            return ;;
    esac
    case $1 in
        fernet) check_fernet "$2" "$3" "$4"; return ;;
        webhook)
            case $4 in
                https://?*) ;;
                *) refuse "$2" "$3" "is not an https:// URL" ;;
            esac
            return ;;
        name) min=3 ;;
        password) min=16 ;;
        signing-key) min=64 ;;
        *) refuse "$2" "$3" "has an unknown kind of check '$1' in check-secrets"; return ;;
    esac
    case $4 in
        *[!$SAFE]*)
            refuse "$2" "$3" "has characters other than letters, digits, '-' and '_' (it goes into connection URLs)"
            return ;;
    esac
    if [ "${#4}" -lt "$min" ]; then
        refuse "$2" "$3" "has ${#4} characters, fewer than the $min a $1 needs"
    fi
}

check_fernet() {  # SOURCE VARIABLE VALUE
    # Airflow splits the value on ',' (key rotation: new key first) and needs each part to be
    # 32 bytes of base64: 43 characters and one '='.
    rest=$3,
    while [ -n "$rest" ]; do
        key=${rest%%,*}
        rest=${rest#*,}
        body=${key%=}
        case $body in
            *[!$BASE64]*) ;;
            *)
                if [ "$body" != "$key" ] && [ "${#body}" -eq 43 ]; then
                    continue
                fi ;;
        esac
        refuse "$1" "$2" "is not a Fernet key (44 characters of url-safe base64 ending in '=')"
        return
    done
}

# The parts of scheme://user:password@host... ; returns 1 when there is no user:password@.
split_url() {  # URL
    rest=${1#*://}
    [ "$rest" != "$1" ] || return 1
    case $rest in *@*) ;; *) return 1 ;; esac
    userinfo=${rest%@*}
    case $userinfo in *:*) ;; *) return 1 ;; esac
    url_user=${userinfo%%:*}
    url_password=${userinfo#*:}
}

# The string field NAME of a JSON object written as "NAME": "value"; returns 1 when absent.
json_field() {  # NAME JSON
    case $2 in *"\"$1\": \""*) ;; *) return 1 ;; esac
    rest=${2#*\"$1\": \"}
    field=${rest%%\"*}
}

check_rule() {  # VARIABLE KIND SOURCE
    eval "present=\${$1+yes}"
    [ "$present" = yes ] || return 0
    eval "value=\${$1}"
    checked=$((checked + 1))
    case $2 in
        url-user | url-password)
            if ! split_url "$value"; then
                refuse "$3" "$1" "cannot be checked: $1 has no user:password@ part"
                return
            fi
            if [ "$2" = url-user ]; then
                check_value name "$3" "$1" "$url_user"
            else
                check_value password "$3" "$1" "$url_password"
            fi ;;
        json-login | json-password)
            if ! json_field "${2#json-}" "$value"; then
                refuse "$3" "$1" "cannot be checked: $1 has no \"${2#json-}\" field"
                return
            fi
            if [ "$2" = json-login ]; then
                check_value name "$3" "$1" "$field"
            else
                check_value password "$3" "$1" "$field"
            fi ;;
        *) check_value "$2" "$3" "$1" "$value" ;;
    esac
}

check_all() {
    problems=0
    checked=0
    while read -r variable kind source; do
        case $variable in '' | '#'*) continue ;; esac
        check_rule "$variable" "$kind" "$source"
    done <<'RULES'
# variable                           kind           from .env
AIRFLOW__DATABASE__SQL_ALCHEMY_CONN  url-password   AIRFLOW_DB_PASSWORD
AIRFLOW__CELERY__RESULT_BACKEND      url-password   CELERY_DB_PASSWORD
AIRFLOW__CORE__FERNET_KEY            fernet         AIRFLOW_FERNET_KEY
AIRFLOW__API_AUTH__JWT_SECRET        signing-key    AIRFLOW_JWT_SECRET
AIRFLOW__API__SECRET_KEY             signing-key    AIRFLOW_API_SECRET_KEY
AIRFLOW_CONN_AWS_LAKE                json-login     LAKE_ACCESS_KEY_ID
AIRFLOW_CONN_AWS_LAKE                json-password  LAKE_SECRET_ACCESS_KEY
AIRFLOW_CONN_MLOPS_FEATURE_STORE     url-password   FEATURES_DB_PASSWORD
AIRFLOW_ADMIN_PASSWORD               password       AIRFLOW_ADMIN_PASSWORD
MLOPS_SLACK_WEBHOOK_URL              webhook        MLOPS_SLACK_WEBHOOK_URL
MLFLOW_BACKEND_STORE_URI             url-password   MLFLOW_DB_PASSWORD
AWS_ACCESS_KEY_ID                    name           LAKE_ACCESS_KEY_ID
AWS_SECRET_ACCESS_KEY                password       LAKE_SECRET_ACCESS_KEY
MINIO_ROOT_USER                      name           MINIO_ROOT_USER
MINIO_ROOT_PASSWORD                  password       MINIO_ROOT_PASSWORD
MC_HOST_local                        url-user       MINIO_ROOT_USER
MC_HOST_local                        url-password   MINIO_ROOT_PASSWORD
LAKE_ACCESS_KEY_ID                   name           LAKE_ACCESS_KEY_ID
LAKE_SECRET_ACCESS_KEY               password       LAKE_SECRET_ACCESS_KEY
POSTGRES_PASSWORD                    password       POSTGRES_PASSWORD
AIRFLOW_DB_PASSWORD                  password       AIRFLOW_DB_PASSWORD
CELERY_DB_PASSWORD                   password       CELERY_DB_PASSWORD
MLFLOW_DB_PASSWORD                   password       MLFLOW_DB_PASSWORD
FEATURES_DB_PASSWORD                 password       FEATURES_DB_PASSWORD
RULES
    if [ "$problems" -gt 0 ]; then
        printf '%s\n' \
            "check-secrets: not starting $1: fix the .env variables named above, then run 'docker compose up -d'." \
            "  a password or key:   openssl rand -hex 32" \
            "  AIRFLOW_FERNET_KEY:  python -c \"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())\"" >&2
        return 1
    fi
    printf 'check-secrets: %s secret variables checked, starting %s\n' "$checked" "$1" >&2
}

if [ "$#" -eq 0 ]; then
    echo "usage: check-secrets COMMAND [ARG...]" >&2
    exit 64
fi
# The checks run in a subshell, so none of their variables reach the command's environment.
if (check_all "$@"); then
    exec "$@"
fi
exit 78
