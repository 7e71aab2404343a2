#!/usr/bin/env bash
# Build the Asterisk the real-Asterisk tests run against, once, and print the folder it is in.
#
#   scripts/build_asterisk.sh               build (or reuse) and print the install folder
#   scripts/build_asterisk.sh --print-path  print where it is (or would be) installed, build nothing
#
# Source: Asterisk 22.10.1 and the pjproject 2.17 tarball its bundled-pjproject build wants, both
# from ../shared/asterisk beside the repository (override: CALLAGENT_ASTERISK_SOURCE), checked
# against their SHA256SUMS. Nothing is downloaded: configure finds pjproject in the externals
# cache. Only the modules the rendered configuration uses are built (menuselect --disable-all,
# then the list below), without -march=native (BUILD_NATIVE is on by default and would make the
# build trap on another CPU - DESIGN.md "Known traps" shows the same trap for llama.cpp).
#
# The install lands in ${XDG_CACHE_HOME:-~/.cache}/callagent/asterisk-<key>/, the key hashing the
# two tarballs, the module list and SCRIPT_VERSION: a later run with the same inputs reuses it at
# once; change any of them and a new folder is built. Bump SCRIPT_VERSION whenever a change to
# this script changes what gets built.
#
# Measured with this module list on 2 shared cores (Debian bookworm): configure 42-46 s, make -j2
# 175-229 s, 4-5 minutes in all; 54 modules, 47 MB installed; a second run returns in 0.1 s.
set -euo pipefail

SCRIPT_VERSION=1
ASTERISK_VERSION=22.10.1
PJPROJECT_VERSION=2.17
# Debian packages Asterisk's configure and make need (/work/shared/asterisk/README.md).
BUILD_DEPS=(build-essential libedit-dev libjansson-dev libxml2-dev uuid-dev libsqlite3-dev
	libssl-dev pkg-config bzip2)
# What callagent's rendered configuration loads or uses (callagent/telephony/asterisk/templates/
# and config.py): both AudioSocket flavours (slin: the application, slin16: the channel driver),
# PJSIP for the trunk, the dialplan's applications and functions, the codecs the trunk may offer
# and the bridges Dial() and transfers use. Of the AMI actions callagent sends, Originate,
# Redirect, BlindTransfer, Hangup and Status are in the core; PlayDTMF comes with app_senddtmf.
MODULES=(
	app_amd app_audiosocket app_dial app_mixmonitor app_playback app_senddtmf app_stack
	app_userevent
	bridge_builtin_features bridge_holding bridge_native_rtp bridge_simple bridge_softmix
	chan_audiosocket chan_pjsip
	codec_a_mu codec_alaw codec_g722 codec_resample codec_ulaw
	format_pcm format_sln format_wav
	func_callerid func_channel func_logic func_strings func_uuid
	pbx_config
	res_audiosocket res_pjproject res_rtp_asterisk res_sorcery_astdb res_sorcery_config
	res_sorcery_memory res_timing_timerfd
	res_pjsip res_pjsip_authenticator_digest res_pjsip_caller_id res_pjsip_diversion
	res_pjsip_dlg_options res_pjsip_dtmf_info res_pjsip_endpoint_identifier_ip
	res_pjsip_endpoint_identifier_user res_pjsip_header_funcs res_pjsip_logger res_pjsip_nat
	res_pjsip_outbound_authenticator_digest res_pjsip_outbound_registration res_pjsip_pubsub
	res_pjsip_refer res_pjsip_rfc3326 res_pjsip_sdp_rtp res_pjsip_session
)
JOBS=2

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source_dir=${CALLAGENT_ASTERISK_SOURCE:-$repo_root/../shared/asterisk}
asterisk_tarball=$source_dir/asterisk-$ASTERISK_VERSION.tar.gz
pjproject_tarball=$source_dir/pjproject-$PJPROJECT_VERSION.tar.bz2
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/callagent

log() { echo "build_asterisk: $*" >&2; }
die() { log "$*"; exit 1; }

print_only=false
case "${1:-}" in
	--print-path) print_only=true ;;
	"") ;;
	*) die "usage: $0 [--print-path]" ;;
esac

for tarball in "$asterisk_tarball" "$pjproject_tarball"; do
	[ -f "$tarball" ] || die "missing $tarball (set CALLAGENT_ASTERISK_SOURCE to the folder holding it)"
done

sha() { sha256sum "$1" | cut -d' ' -f1; }
asterisk_sha=$(sha "$asterisk_tarball")
pjproject_sha=$(sha "$pjproject_tarball")
key=$(printf '%s\n' "$asterisk_sha" "$pjproject_sha" "${MODULES[*]}" "$SCRIPT_VERSION" |
	sha256sum | cut -c1-16)
prefix=$cache_root/asterisk-$ASTERISK_VERSION-$key
marker=$prefix/.callagent-build

if $print_only || [ -f "$marker" ]; then
	echo "$prefix"
	exit 0
fi

# The tarballs must be the ones SHA256SUMS names (a truncated copy builds a broken Asterisk).
if [ -f "$source_dir/SHA256SUMS" ]; then
	(cd "$source_dir" && sha256sum --quiet -c SHA256SUMS) || die "checksum mismatch in $source_dir"
fi

mkdir -p "$cache_root"
# One build at a time per key: a second `make test` started meanwhile waits, then reuses it.
exec 9>"$prefix.lock"
flock 9
if [ -f "$marker" ]; then
	echo "$prefix"
	exit 0
fi

missing=()
for package in "${BUILD_DEPS[@]}"; do
	dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		log "installing ${missing[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
	else
		die "please install: ${missing[*]}"
	fi
fi

work=$(mktemp -d "$cache_root/asterisk-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
build_log=$work/build.log
run() {
	# Quiet on success; on failure the tail of the log says why.
	if ! "$@" >>"$build_log" 2>&1; then
		tail -n 40 "$build_log" >&2
		die "failed: $*"
	fi
}

started=$SECONDS
log "building Asterisk $ASTERISK_VERSION into $prefix (about 5 minutes on 2 cores)"
tar -xzf "$asterisk_tarball" -C "$work"
cd "$work/asterisk-$ASTERISK_VERSION"

# --with-externals-cache: pjproject's tarball is taken from there (md5-checked against
# third-party/pjproject/pjproject-2.17.tar.bz2.md5), so nothing is fetched.
run ./configure --prefix="$prefix" --with-pjproject-bundled \
	--with-externals-cache="$source_dir" --disable-xmldoc
configured=$SECONDS

run make menuselect.makeopts
enable=()
for module in "${MODULES[@]}"; do enable+=(--enable "$module"); done
# OPTIONAL_API: modules call each other's optional functions (chan_pjsip and res_pjsip_*).
run menuselect/menuselect --disable-all "${enable[@]}" \
	--enable OPTIONAL_API --disable BUILD_NATIVE menuselect.makeopts
# menuselect.makeopts lists the *disabled* modules of each module category, and those whose
# dependencies failed; a module named below that still appears there was refused, and the build
# would silently lack it. (Other lines, e.g. MENUSELECT_BUILD_DEPS and MENUSELECT_CFLAGS, list
# what is on.)
module_lines='^MENUSELECT_(ADDONS|APPS|BRIDGES|CDR|CEL|CHANNELS|CODECS|FORMATS|FUNCS|PBX|RES|DEPSFAILED)='
for module in "${MODULES[@]}"; do
	if grep -E "$module_lines" menuselect.makeopts | grep -qw -- "$module"; then
		die "menuselect left $module disabled"
	fi
done
if grep -E "^MENUSELECT_CFLAGS=" menuselect.makeopts | grep -qw BUILD_NATIVE; then
	die "BUILD_NATIVE is still on"
fi

run make -j"$JOBS"
built=$SECONDS

stage=$work/stage
run make install DESTDIR="$stage"
for module in "${MODULES[@]}"; do
	[ -f "$stage$prefix/lib/asterisk/modules/$module.so" ] || die "$module.so was not built"
done
rm -rf "$prefix"
mkdir -p "$(dirname "$prefix")"
mv "$stage$prefix" "$prefix"
{
	echo "asterisk $ASTERISK_VERSION sha256 $asterisk_sha"
	echo "pjproject $PJPROJECT_VERSION sha256 $pjproject_sha"
	echo "script_version $SCRIPT_VERSION"
	echo "modules ${MODULES[*]}"
	echo "configure_s $((configured - started)) make_s $((built - configured))" \
		"total_s $((SECONDS - started))"
} >"$marker"
log "built in $((SECONDS - started)) s (configure $((configured - started)) s," \
	"make $((built - configured)) s), $(du -sh "$prefix" | cut -f1) installed"
echo "$prefix"
