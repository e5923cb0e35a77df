// Every HDF5 read and write of the project: checkpoints (layout in DESIGN.md,
// tensor names and shapes from the table in gpt.h), token shards and PPO
// rollout dumps. It stores and verifies bytes; it knows no model math and
// gives /state entries no meaning.
#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <hdf5.h>
#include <openssl/evp.h>
#include <signal.h>

#include "common.h"

// A chunk holds at most this many elements (4 MiB of float32): a small
// tensor is one chunk, a large one (a 50k-token wte) is cut into row blocks.
#define CHUNK_ELEMS ((hsize_t)1 << 20)
// zlib level: 4 keeps saving fast; float data gains little from more.
#define DEFLATE_LEVEL 4
#define PATH_MAX_LEN 512

struct Ckpt {
    hid_t file;
    const char *kind;  // "checkpoint" | "shard" | "rollout dump", for messages
    char *path;        // the final name
    char *tmp;         // PATH.tmp while writing; NULL when reading
    char *failed;      // why the first failed write failed; commit refuses
    int no_replace;    // commit keeps a file that has appeared at path (ckpt_no_replace)
};

// --- HDF5 plumbing -----------------------------------------------------------

// Before any HDF5 call (a constructor: even H5F_ACC_RDONLY calls H5open):
// HDF5 is told to register no exit handler, since every file is closed by
// us, and after a close that failed (a full disk) HDF5 keeps a half-closed
// file whose second close at exit crashes in H5_term_library (SIGSEGV in
// H5F__close_cb). And HDF5 prints its error stack on every failure; we
// report one line instead.
__attribute__((constructor)) static void h5_setup(void) {
    H5dont_atexit();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

// What HDF5's error stack says about the call that just failed. Read it
// right after the failing call: the next API call clears the stack.
typedef struct {
    int checksum;    // the filter pipeline failed (fletcher32 mismatch)
    int truncated;   // the file is shorter than its superblock says
    char desc[200];  // the innermost message
} H5Fault;

// HDF5's messages for system errors span lines ("file write failed: time =
// ...\n, filename = ..., errno = 28, error message = 'No space left on
// device', ..."): keep what precedes the first ':' and the error message.
static void fault_desc(char *out, size_t n, const char *desc) {
    const char *msg = strstr(desc, "error message = '");
    if (msg) {
        msg += strlen("error message = '");
        const char *end = strchr(msg, '\'');
        const char *colon = strchr(desc, ':');
        snprintf(out, n, "%.*s: %.*s", colon ? (int)(colon - desc) : 0, desc,
                 end ? (int)(end - msg) : (int)strlen(msg), msg);
    } else {
        snprintf(out, n, "%s", desc);
    }
    for (char *c = out; *c; c++)
        if (*c == '\n' || *c == '\r') *c = ' ';
}

static herr_t fault_visit(unsigned n, const H5E_error2_t *e, void *data) {
    H5Fault *f = data;
    if (n == 0 && e->desc) fault_desc(f->desc, sizeof f->desc, e->desc);
    if (e->maj_num == H5E_PLINE) f->checksum = 1;
    if (e->min_num == H5E_TRUNCATED) f->truncated = 1;
    return 0;
}

static H5Fault fault_get(void) {
    H5Fault f;
    memset(&f, 0, sizeof f);
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, fault_visit, &f);
    if (!f.desc[0]) snprintf(f.desc, sizeof f.desc, "unknown HDF5 error");
    return f;
}

// File access: H5Fclose closes every object still open, so the file is
// really closed (and complete) when it returns.
static hid_t fapl_strong(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    return fapl;
}

// Links and attributes stay in their object's header (compact storage)
// however many there are: HDF5 moves them past 8 into a fractal heap whose
// blocks carry no checksum, and a damaged byte there crashed HDF5 itself
// (fuzz/fuzz_checkpoint: SEGV in H5G__dense_iterate). Object headers are
// checksummed. PLIST is a file or group creation property list.
static void plist_compact(hid_t plist) {
    H5Pset_link_phase_change(plist, 65535, 65535);
    H5Pset_attr_phase_change(plist, 65535, 65535);
}

static hid_t fcpl_create(void) {
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    plist_compact(fcpl);
    return fcpl;
}

// For files we create: the HDF5 1.10 file format, whose metadata (superblock,
// object headers with their attributes and filter settings, chunk indexes)
// carries checksums that HDF5 verifies on read. The older default format has
// none: a flipped byte in a filter's parameters reached HDF5's decoder and
// overflowed its buffer (found by fuzz/fuzz_checkpoint). h5py and any HDF5
// >= 1.10 read these files.
static hid_t fapl_create(void) {
    hid_t fapl = fapl_strong();
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110);
    return fapl;
}

// "/prefix/rest", or "/rest" when prefix is "" or NULL.
static void path_join(char out[PATH_MAX_LEN], const char *prefix, const char *rest) {
    int n = (prefix && prefix[0]) ? snprintf(out, PATH_MAX_LEN, "/%s/%s", prefix, rest)
                                  : snprintf(out, PATH_MAX_LEN, "/%s", rest);
    ASSERT(n > 0 && n < PATH_MAX_LEN);
}

// Whether an absolute path names an object. H5Lexists fails, rather than
// saying no, when an inner group is absent, so each prefix is asked in turn.
static int link_exists(hid_t file, const char *path) {
    char buf[PATH_MAX_LEN];
    size_t len = strlen(path);
    ASSERT(path[0] == '/' && len < sizeof buf);
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char saved = buf[i];
        buf[i] = '\0';
        htri_t e = H5Lexists(file, buf, H5P_DEFAULT);
        buf[i] = saved;
        if (e <= 0) return 0;
    }
    return 1;
}

// H5I_GROUP, H5I_DATASET, or H5I_BADID when PATH names nothing.
static H5I_type_t object_type(hid_t file, const char *path) {
    if (!link_exists(file, path)) return H5I_BADID;
    hid_t o = H5Oopen(file, path, H5P_DEFAULT);
    if (o < 0) return H5I_BADID;
    H5I_type_t t = H5Iget_type(o);
    H5Oclose(o);
    return t;
}

static void shape_str(char *buf, size_t n, int ndim, const hsize_t *dims) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %llu" : "%llu", (unsigned long long)dims[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

static void type_str(char *buf, size_t n, hid_t t) {
    H5T_class_t c = H5Tget_class(t);
    size_t bits = 8 * H5Tget_size(t);
    if (c == H5T_FLOAT) snprintf(buf, n, "float%zu", bits);
    else if (c == H5T_INTEGER)
        snprintf(buf, n, "%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", bits);
    else if (c == H5T_STRING) snprintf(buf, n, "string");
    else snprintf(buf, n, "a non-numeric type");
}

// Same class, size and (for integers) signedness; byte order may differ,
// HDF5 converts that on read.
static int type_matches(hid_t t, hid_t want) {
    if (H5Tget_class(t) != H5Tget_class(want) || H5Tget_size(t) != H5Tget_size(want)) return 0;
    return H5Tget_class(t) != H5T_INTEGER || H5Tget_sign(t) == H5Tget_sign(want);
}

// --- writing: groups, attributes, datasets ------------------------------------

// Remembers the reason just given to rlhf_fail (the first one) for commit.
static int mark_failed(Ckpt *ck) {
    if (!ck->failed) ck->failed = strdup_check(rlhf_errmsg);
    return -1;
}

static int write_fail(Ckpt *ck, const char *what, const H5Fault *f) {
    rlhf_fail("%s %s: cannot write %s (%s); hint: check free disk space and "
                     "write permission",
              ck->kind, ck->tmp ? ck->tmp : ck->path, what, f->desc);
    return mark_failed(ck);
}

// Creates group PATH (and missing parents) unless it exists. track_order
// makes iteration follow creation order (metrics columns keep their order).
static int group_ensure(Ckpt *ck, const char *path, int track_order) {
    if (link_exists(ck->file, path)) return 0;
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    plist_compact(gcpl);
    H5Pset_create_intermediate_group(lcpl, 1);
    if (track_order) H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    hid_t g = H5Gcreate2(ck->file, path, lcpl, gcpl, H5P_DEFAULT);
    H5Fault f = fault_get();
    H5Pclose(lcpl);
    H5Pclose(gcpl);
    if (g < 0) return write_fail(ck, path, &f);
    H5Gclose(g);
    return 0;
}

// Writes a scalar attribute NAME on the object at OBJ.
static int attr_put(Ckpt *ck, const char *obj, const char *name, hid_t ftype, hid_t mtype,
                    const void *value) {
    hid_t o = H5Oopen(ck->file, obj, H5P_DEFAULT);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = o < 0 ? -1 : H5Acreate2(o, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = a < 0 ? -1 : H5Awrite(a, mtype, value);
    H5Fault f = fault_get();
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    if (o >= 0) H5Oclose(o);
    if (st < 0) {
        char what[PATH_MAX_LEN + 64];
        snprintf(what, sizeof what, "attribute '%s' of %s", name, obj);
        return write_fail(ck, what, &f);
    }
    return 0;
}

// Variable-length UTF-8: h5py reads these as str.
static hid_t str_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

static int attr_put_str(Ckpt *ck, const char *obj, const char *name, const char *s) {
    hid_t t = str_type();
    const char *p = s ? s : "";
    int rc = attr_put(ck, obj, name, t, t, &p);
    H5Tclose(t);
    return rc;
}

static int attr_put_i32(Ckpt *ck, const char *obj, const char *name, int v) {
    return attr_put(ck, obj, name, H5T_STD_I32LE, H5T_NATIVE_INT, &v);
}

static int attr_put_i64(Ckpt *ck, const char *obj, const char *name, int64_t v) {
    return attr_put(ck, obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}

static int attr_put_f32(Ckpt *ck, const char *obj, const char *name, float v) {
    return attr_put(ck, obj, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, &v);
}

// Chunk shape: whole trailing dimensions while they fit CHUNK_ELEMS, then
// as many leading rows as fit. A zero-length dimension is made extensible
// (chunked storage needs chunk dims <= max dims), so empty datasets carry
// the same filters as the rest.
static void chunk_shape(int ndim, const hsize_t *dims, hsize_t *chunk, hsize_t *maxdims) {
    hsize_t budget = CHUNK_ELEMS;
    for (int i = ndim - 1; i >= 0; i--) {
        hsize_t c = dims[i] == 0 ? 1 : (dims[i] < budget ? dims[i] : budget);
        chunk[i] = c;
        maxdims[i] = dims[i] == 0 ? H5S_UNLIMITED : dims[i];
        budget = budget / c > 0 ? budget / c : 1;
    }
}

// Creates dataset PATH (missing parent groups too), chunked with shuffle +
// deflate + fletcher32, and writes `data` (mtype in memory, ftype on disk).
static int dset_put(Ckpt *ck, const char *path, hid_t ftype, hid_t mtype, int ndim,
                    const hsize_t *dims, const void *data) {
    ASSERT(ndim >= 1 && ndim <= 2);
    hsize_t chunk[2], maxdims[2], npoints = 1;
    for (int i = 0; i < ndim; i++) npoints *= dims[i];
    chunk_shape(ndim, dims, chunk, maxdims);
    hid_t space = H5Screate_simple(ndim, dims, maxdims);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    herr_t st = H5Pset_chunk(dcpl, ndim, chunk);
    if (st >= 0) st = H5Pset_shuffle(dcpl);
    if (st >= 0) st = H5Pset_deflate(dcpl, DEFLATE_LEVEL);
    if (st >= 0) st = H5Pset_fletcher32(dcpl);
    hid_t d = st < 0 ? -1 : H5Dcreate2(ck->file, path, ftype, space, lcpl, dcpl, H5P_DEFAULT);
    if (d < 0) st = -1;
    else if (npoints > 0) st = H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Fault f = fault_get();
    if (d >= 0) H5Dclose(d);
    H5Pclose(lcpl);
    H5Pclose(dcpl);
    H5Sclose(space);
    return st < 0 ? write_fail(ck, path, &f) : 0;
}

// --- reading: attributes and datasets ------------------------------------------

static int read_fail_missing(Ckpt *ck, const char *what) {
    return rlhf_fail("%s %s: %s is missing; hint: the file holds something else than "
                     "expected (list it with `h5ls -r %s`)",
                     ck->kind, ck->path, what, ck->path);
}

// Opens attribute NAME of OBJ and checks it is one value of class `cls`.
static hid_t attr_open(Ckpt *ck, const char *obj, const char *name, H5T_class_t cls) {
    char what[PATH_MAX_LEN + 64];
    snprintf(what, sizeof what, "attribute '%s' of %s", name, obj);
    if (!link_exists(ck->file, obj) || H5Aexists_by_name(ck->file, obj, name, H5P_DEFAULT) <= 0) {
        read_fail_missing(ck, what);
        return -1;
    }
    hid_t a = H5Aopen_by_name(ck->file, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) {
        H5Fault f = fault_get();
        rlhf_fail("%s %s: cannot read %s (%s); hint: the file is damaged", ck->kind, ck->path,
                  what, f.desc);
        return -1;
    }
    hid_t t = H5Aget_type(a), s = H5Aget_space(a);
    int ok = H5Tget_class(t) == cls && H5Sget_simple_extent_npoints(s) == 1;
    H5Tclose(t);
    H5Sclose(s);
    if (!ok) {
        H5Aclose(a);
        const char *want = cls == H5T_STRING ? "a string" : cls == H5T_INTEGER ? "an integer" : "a number";
        rlhf_fail("%s %s: %s is not %s; hint: the file was not written by rlhf.c or is "
                  "damaged", ck->kind, ck->path, what, want);
        return -1;
    }
    return a;
}

// Reads one numeric attribute, converted to mtype (class cls on disk).
static int attr_get(Ckpt *ck, const char *obj, const char *name, H5T_class_t cls, hid_t mtype,
                    void *value) {
    hid_t a = attr_open(ck, obj, name, cls);
    if (a < 0) return -1;
    herr_t st = H5Aread(a, mtype, value);
    H5Fault f = fault_get();
    H5Aclose(a);
    if (st < 0)
        return rlhf_fail("%s %s: cannot read attribute '%s' of %s (%s); hint: the file is "
                         "damaged", ck->kind, ck->path, name, obj, f.desc);
    return 0;
}

static int attr_get_i64(Ckpt *ck, const char *obj, const char *name, int64_t *v) {
    return attr_get(ck, obj, name, H5T_INTEGER, H5T_NATIVE_INT64, v);
}

static int attr_get_int(Ckpt *ck, const char *obj, const char *name, int *v) {
    int64_t x;
    if (attr_get_i64(ck, obj, name, &x)) return -1;
    if (x < INT_MIN || x > INT_MAX)
        return rlhf_fail("%s %s: attribute '%s' of %s is out of range (%lld); hint: the file "
                         "is damaged", ck->kind, ck->path, name, obj, (long long)x);
    *v = (int)x;
    return 0;
}

static int attr_get_f32(Ckpt *ck, const char *obj, const char *name, float *v) {
    return attr_get(ck, obj, name, H5T_FLOAT, H5T_NATIVE_FLOAT, v);
}

// --- a guard over reading a variable-length string ------------------------------
// A variable-length string lives in the file's global heap, which carries no
// checksum, and HDF5 1.10.8 (H5HG_read) copies a heap object by the size the
// file states without checking it against its collection: a damaged size
// reads past HDF5's buffer, far enough to fault (fuzz/fuzz_checkpoint found
// it). While such a string is read, SIGSEGV and SIGBUS print one line naming
// the file and end the process with status 1: nothing can be unwound from
// inside HDF5. A smaller overread gives a wrong string, which the root
// checksum (attrs_verify) or the reader's own checks then refuse.

static char heap_guard_msg[600];

static void heap_guard_fire(int sig) {
    (void)sig;
    ssize_t n = write(STDERR_FILENO, heap_guard_msg, strlen(heap_guard_msg));
    (void)n;
    _exit(1);
}

static void heap_guard_arm(const Ckpt *ck, const char *name, struct sigaction old[2]) {
    snprintf(heap_guard_msg, sizeof heap_guard_msg,
             "rlhf: error: %s %s: HDF5 faulted reading attribute '%s' (a damaged global heap); "
             "hint: the file is damaged; use an earlier one\n", ck->kind, ck->path, name);
    for (char *c = heap_guard_msg; c[1]; c++)
        if ((unsigned char)*c < 0x20) *c = '?';
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = heap_guard_fire;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old[0]);
    sigaction(SIGBUS, &sa, &old[1]);
}

static void heap_guard_disarm(const struct sigaction old[2]) {
    sigaction(SIGSEGV, &old[0], NULL);
    sigaction(SIGBUS, &old[1], NULL);
}

// Reads a string attribute, variable or fixed length; *out is malloc'd.
static int attr_get_str(Ckpt *ck, const char *obj, const char *name, char **out) {
    hid_t a = attr_open(ck, obj, name, H5T_STRING);
    if (a < 0) return -1;
    hid_t ft = H5Aget_type(a), mt = H5Tcopy(H5T_C_S1);
    H5Tset_cset(mt, H5Tget_cset(ft));  // HDF5 does not convert between charsets
    herr_t st;
    if (H5Tis_variable_str(ft) > 0) {
        char *s = NULL;
        H5Tset_size(mt, H5T_VARIABLE);
        struct sigaction old[2];
        heap_guard_arm(ck, name, old);
        st = H5Aread(a, mt, &s);
        heap_guard_disarm(old);
        if (st >= 0) *out = strdup_check(s ? s : "");
        if (s) H5free_memory(s);
    } else {
        size_t n = H5Tget_size(ft);
        char *s = callocCheck(n + 1, 1);
        H5Tset_size(mt, n + 1);
        H5Tset_strpad(mt, H5T_STR_NULLTERM);
        st = H5Aread(a, mt, s);
        if (st >= 0) *out = s;
        else free(s);
    }
    H5Fault f = fault_get();
    H5Tclose(mt);
    H5Tclose(ft);
    H5Aclose(a);
    if (st < 0)
        return rlhf_fail("%s %s: cannot read attribute '%s' of %s (%s); hint: the file is "
                         "damaged", ck->kind, ck->path, name, obj, f.desc);
    return 0;
}

// Opens dataset PATH and checks its type against `want` (class, size, sign)
// and its rank; its shape too when want_dims is given. dims_out (may be
// NULL) receives the shape. Returns the dataset or -1 with a reason.
static hid_t dset_open(Ckpt *ck, const char *path, hid_t want, int ndim, const hsize_t *want_dims,
                       hsize_t *dims_out, const char *hint) {
    H5I_type_t kind = object_type(ck->file, path);
    if (kind == H5I_BADID) {
        read_fail_missing(ck, path);
        return -1;
    }
    if (kind != H5I_DATASET) {
        rlhf_fail("%s %s: %s is not a dataset; hint: the file was not written by rlhf.c",
                  ck->kind, ck->path, path);
        return -1;
    }
    hid_t d = H5Dopen2(ck->file, path, H5P_DEFAULT);
    if (d < 0) {
        H5Fault f = fault_get();
        rlhf_fail("%s %s: cannot open %s (%s); hint: the file is damaged", ck->kind, ck->path,
                  path, f.desc);
        return -1;
    }
    hid_t t = H5Dget_type(d), s = H5Dget_space(d);
    hsize_t dims[H5S_MAX_RANK];
    int rank = H5Sget_simple_extent_ndims(s);
    if (rank >= 0 && rank <= H5S_MAX_RANK) H5Sget_simple_extent_dims(s, dims, NULL);
    char got[64], exp[64];
    int rc = 0;
    if (!type_matches(t, want)) {
        type_str(got, sizeof got, t);
        type_str(exp, sizeof exp, want);
        rc = rlhf_fail("%s %s: %s has type %s, expected %s; hint: the file was written by "
                       "another tool or edited", ck->kind, ck->path, path, got, exp);
    } else if (rank != ndim) {
        rc = rlhf_fail("%s %s: %s has %d dimensions, expected %d; hint: %s", ck->kind, ck->path,
                       path, rank, ndim, hint);
    } else if (want_dims && memcmp(dims, want_dims, (size_t)ndim * sizeof *dims) != 0) {
        shape_str(got, sizeof got, ndim, dims);
        shape_str(exp, sizeof exp, ndim, want_dims);
        rc = rlhf_fail("%s %s: %s has shape %s, expected %s; hint: %s", ck->kind, ck->path, path,
                       got, exp, hint);
    }
    H5Tclose(t);
    H5Sclose(s);
    if (rc) {
        H5Dclose(d);
        return -1;
    }
    if (dims_out) memcpy(dims_out, dims, (size_t)ndim * sizeof *dims);
    return d;
}

// Reads all of dataset d (opened by dset_open) into buf as mtype, closes d.
// A fletcher32 mismatch surfaces here as a filter-pipeline failure.
static int dset_read(Ckpt *ck, hid_t d, const char *path, hid_t mtype, void *buf) {
    hid_t s = H5Dget_space(d);
    hssize_t npoints = H5Sget_simple_extent_npoints(s);
    H5Sclose(s);
    herr_t st = npoints > 0 ? H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) : 0;
    H5Fault f = fault_get();
    H5Dclose(d);
    if (st >= 0) return 0;
    if (f.checksum)
        return rlhf_fail("%s %s: dataset %s is corrupt (checksum mismatch); hint: the file was "
                         "damaged on disk or in transfer; use an earlier checkpoint or copy it "
                         "again", ck->kind, ck->path, path);
    return rlhf_fail("%s %s: cannot read dataset %s (%s); hint: the file is damaged or "
                     "truncated; use an earlier checkpoint", ck->kind, ck->path, path, f.desc);
}

// Names collected by HDF5 iterations.
typedef struct {
    int n, cap;
    char **names;
} NameList;

static void name_list_add(NameList *l, const char *name) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->names = reallocCheck(l->names, (size_t)l->cap * sizeof *l->names);
    }
    l->names[l->n++] = strdup_check(name);
}

static herr_t name_collect(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    (void)g;
    (void)info;
    name_list_add(data, name);
    return 0;
}

static void name_list_free(NameList *l) {
    for (int i = 0; i < l->n; i++) free(l->names[i]);
    free(l->names);
    memset(l, 0, sizeof *l);
}

// --- the attributes' checksum -------------------------------------------------
// Datasets carry fletcher32; attributes carry nothing of their own. So a
// committed file gets one root attribute, checksum = "sha256:HEX", over every
// attribute of every object: object paths in name order, each object's
// attributes in name order, each as its name and value (strings as they
// are, integers and floats in decimal with every digit). Any edit, addition
// or removal of an attribute anywhere is caught on open. A file without the
// attribute was written before it existed and is read unverified
// (CkptMeta.sealed = 0).

typedef struct {
    EVP_MD_CTX *md;
    Ckpt *ck;
    const char *obj;  // the object whose attributes are being read
    int rc;
} AttrDigest;

static void digest_put(AttrDigest *d, const char *tag, const char *text) {
    EVP_DigestUpdate(d->md, tag, strlen(tag) + 1);
    EVP_DigestUpdate(d->md, text, strlen(text) + 1);
}

static herr_t attr_digest_one(hid_t loc, const char *name, const H5A_info_t *info, void *data) {
    (void)info;
    AttrDigest *d = data;
    if (!strcmp(d->obj, "/") && !strcmp(name, "checksum")) return 0;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t t = a < 0 ? -1 : H5Aget_type(a);
    H5T_class_t cls = t < 0 ? H5T_NO_CLASS : H5Tget_class(t);
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    char buf[64], *str = NULL;
    int rc;
    if (cls == H5T_STRING) {
        rc = attr_get_str(d->ck, d->obj, name, &str);
    } else if (cls == H5T_INTEGER) {
        int64_t v = 0;
        rc = attr_get_i64(d->ck, d->obj, name, &v);
        snprintf(buf, sizeof buf, "i%lld", (long long)v);
    } else if (cls == H5T_FLOAT) {
        double v = 0;
        rc = attr_get(d->ck, d->obj, name, H5T_FLOAT, H5T_NATIVE_DOUBLE, &v);
        snprintf(buf, sizeof buf, "f%.17g", v);
    } else {
        rc = rlhf_fail("%s %s: attribute '%s' of %s is of a type rlhf.c never writes; hint: the "
                       "file was edited or is damaged", d->ck->kind, d->ck->path, name, d->obj);
    }
    if (rc == 0) digest_put(d, name, str ? str : buf);
    free(str);
    d->rc = rc;
    return rc ? -1 : 0;
}

static herr_t object_collect(hid_t o, const char *name, const H5O_info_t *info, void *data) {
    (void)o;
    if (info->num_attrs > 0) name_list_add(data, name);
    return 0;
}

// sha256 of every attribute in the file (but the root's checksum) into hex.
static int attrs_digest(Ckpt *ck, char hex[65]) {
    NameList objs = {0, 0, NULL};
    if (H5Ovisit2(ck->file, H5_INDEX_NAME, H5_ITER_INC, object_collect, &objs,
                  H5O_INFO_NUM_ATTRS) < 0) {
        H5Fault f = fault_get();
        name_list_free(&objs);
        return rlhf_fail("%s %s: cannot list its objects (%s); hint: the file is damaged",
                         ck->kind, ck->path, f.desc);
    }
    AttrDigest d = {EVP_MD_CTX_new(), ck, NULL, 0};
    ASSERT(d.md && EVP_DigestInit_ex(d.md, EVP_sha256(), NULL) == 1);
    for (int i = 0; i < objs.n && d.rc == 0; i++) {
        char path[PATH_MAX_LEN];
        if (!strcmp(objs.names[i], ".")) snprintf(path, sizeof path, "/");
        else snprintf(path, sizeof path, "/%s", objs.names[i]);
        d.obj = path;
        digest_put(&d, "object", path);
        hsize_t idx = 0;
        if (H5Aiterate_by_name(ck->file, path, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_digest_one,
                               &d, H5P_DEFAULT) < 0 && d.rc == 0)
            d.rc = rlhf_fail("%s %s: cannot read the attributes of %s; hint: the file is damaged",
                             ck->kind, ck->path, path);
    }
    name_list_free(&objs);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    int ok = EVP_DigestFinal_ex(d.md, md, &len) == 1 && len == 32;
    EVP_MD_CTX_free(d.md);
    if (d.rc) return -1;
    ASSERT(ok);
    for (unsigned i = 0; i < 32; i++) sprintf(hex + 2 * i, "%02x", md[i]);
    hex[64] = '\0';
    return 0;
}

// Writes the root checksum of a file about to be committed. A fixed-length
// string: it lives in the root's object header, which HDF5 checksums,
// rather than in the global heap, which has none (a damaged byte there can
// make HDF5 1.10 loop forever reading a variable-length string).
static int attrs_seal(Ckpt *ck) {
    char hex[65], value[72];
    if (attrs_digest(ck, hex) != 0) return mark_failed(ck);
    snprintf(value, sizeof value, "sha256:%s", hex);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(value));
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    int rc = attr_put(ck, "/", "checksum", t, t, value);
    H5Tclose(t);
    return rc;
}

// Verifies the root checksum; *sealed = 0 (and 0 returned) for a file
// written before checksums.
static int attrs_verify(Ckpt *ck, int *sealed) {
    *sealed = H5Aexists_by_name(ck->file, "/", "checksum", H5P_DEFAULT) > 0;
    if (!*sealed) return 0;
    char *stored = NULL, hex[65];
    if (attr_get_str(ck, "/", "checksum", &stored) != 0) return -1;
    int rc = attrs_digest(ck, hex);
    if (rc == 0 && (strncmp(stored, "sha256:", 7) != 0 || strcmp(stored + 7, hex) != 0))
        rc = rlhf_fail("%s %s: its attributes (config, stage, step, lineage, shapes, tokenizer "
                       "ids ...) do not match their checksum: the file was edited or is "
                       "damaged; hint: use an unmodified checkpoint", ck->kind, ck->path);
    free(stored);
    return rc;
}

// --- a watchdog over reading a file's metadata --------------------------------
// HDF5 1.10.8 can loop forever on some damaged metadata that carries no
// checksum (a variable-length string's global heap; fuzz/fuzz_checkpoint
// found one). Reading a file's attributes takes milliseconds, so while it
// runs a timer is armed; if it fires, a thread of its own (no signal: HDF5 is
// not async-signal-safe, and libFuzzer owns SIGALRM) prints one line and
// ends the process with status 1. The one exit in the library: a hung HDF5
// cannot return.

#define WATCHDOG_SECONDS 20

static char watchdog_msg[600];

// WATCHDOG_SECONDS, or RLHF_WATCHDOG_SECONDS from the environment (tests).
static int watchdog_seconds(void) {
    const char *e = getenv("RLHF_WATCHDOG_SECONDS");
    int s = e ? atoi(e) : 0;
    return s > 0 ? s : WATCHDOG_SECONDS;
}

static void watchdog_fire(union sigval v) {
    (void)v;
    ssize_t n = write(STDERR_FILENO, watchdog_msg, strlen(watchdog_msg));
    (void)n;
    _exit(1);
}

// Arms the watchdog for reading PATH (a "checkpoint", "shard"); returns the
// timer for watchdog_disarm, or NULL if none could be made (reading goes on).
static timer_t *watchdog_arm(const char *kind, const char *path) {
    static timer_t timer;
    static int made;
    snprintf(watchdog_msg, sizeof watchdog_msg,
             "rlhf: error: %s %s: HDF5 did not finish reading its metadata in %d s; hint: the "
             "file is damaged; use an earlier one\n", kind, path, watchdog_seconds());
    for (char *c = watchdog_msg; c[1]; c++)
        if ((unsigned char)*c < 0x20) *c = '?';
    if (!made) {
        struct sigevent ev;
        memset(&ev, 0, sizeof ev);
        ev.sigev_notify = SIGEV_THREAD;
        ev.sigev_notify_function = watchdog_fire;
        if (timer_create(CLOCK_MONOTONIC, &ev, &timer) != 0) return NULL;
        made = 1;
    }
    struct itimerspec its = {.it_value = {.tv_sec = watchdog_seconds()}};
    return timer_settime(timer, 0, &its, NULL) == 0 ? &timer : NULL;
}

static void watchdog_disarm(timer_t *timer) {
    if (!timer) return;
    struct itimerspec off;
    memset(&off, 0, sizeof off);
    timer_settime(*timer, 0, &off, NULL);
}

// --- files: create, commit, abort, open, close ----------------------------------

static void ck_free(Ckpt *ck) {
    free(ck->failed);
    free(ck->path);
    free(ck->tmp);
    free(ck);
}

// Starts PATH.tmp (a stale one is removed) for a crash-safe write.
static Ckpt *tmp_create(const char *path, const char *kind) {
    Ckpt *ck = callocCheck(1, sizeof *ck);
    ck->kind = kind;
    ck->path = strdup_check(path);
    ck->tmp = mallocCheck(strlen(path) + 5);
    sprintf(ck->tmp, "%s.tmp", path);
    // Probe with open(2) for a precise reason (HDF5 would only say "unable
    // to open file"); HDF5 then truncates what we made.
    int fd = -1;
    if (unlink(ck->tmp) == 0 || errno == ENOENT)
        fd = open(ck->tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) {
        rlhf_fail("%s %s: cannot create %s: %s; hint: check that the directory exists and is "
                  "writable", kind, path, ck->tmp, strerror(errno));
        ck_free(ck);
        return NULL;
    }
    close(fd);
    hid_t fapl = fapl_create();
    hid_t fcpl = fcpl_create();
    ck->file = H5Fcreate(ck->tmp, H5F_ACC_TRUNC, fcpl, fapl);
    H5Fault f = fault_get();
    H5Pclose(fcpl);
    H5Pclose(fapl);
    if (ck->file < 0) {
        rlhf_fail("%s %s: cannot create %s (%s); hint: check free disk space and permissions",
                  kind, path, ck->tmp, f.desc);
        unlink(ck->tmp);
        ck_free(ck);
        return NULL;
    }
    return ck;
}

void ckpt_meta_free(CkptMeta *meta) {
    if (!meta) return;
    free(meta->config_json);
    free(meta->parent);
    meta->config_json = NULL;
    meta->parent = NULL;
}

Ckpt *ckpt_create(const char *path, const CkptMeta *meta) {
    ASSERT(path && meta);
    Ckpt *ck = tmp_create(path, "checkpoint");
    if (!ck) return NULL;
    char created[40];
    if (meta->created[0]) {
        snprintf(created, sizeof created, "%s", meta->created);
    } else {
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    if (attr_put_str(ck, "/", "format", CKPT_FORMAT) ||
        attr_put_i32(ck, "/", "format_version", CKPT_FORMAT_VERSION) ||
        attr_put_str(ck, "/", "stage", meta->stage) ||
        attr_put_i64(ck, "/", "step", meta->step) ||
        attr_put_str(ck, "/", "config", meta->config_json) ||
        attr_put_str(ck, "/", "parent", meta->parent) ||
        attr_put_str(ck, "/", "created", created)) {
        ckpt_abort(ck);  // keeps rlhf_errmsg
        return NULL;
    }
    return ck;
}

int ckpt_commit(Ckpt *ck) {
    ASSERT(ck && ck->tmp);
    if (!ck->failed) attrs_seal(ck);
    if (ck->failed) {
        rlhf_fail("%s", ck->failed);  // the reason of the first failed write
        ckpt_abort(ck);
        return -1;
    }
    herr_t st = H5Fclose(ck->file);
    H5Fault f = fault_get();
    ck->file = -1;
    int rc = 0;
    if (st < 0) {
        rc = rlhf_fail("%s %s: cannot finish %s (%s); hint: check free disk space", ck->kind,
                       ck->path, ck->tmp, f.desc);
        unlink(ck->tmp);
    } else if (atomic_install(ck->tmp, ck->path, ck->no_replace) != 0) {  // it removed the tmp
        rc = rlhf_fail("%s %s", ck->kind, rlhf_errmsg);
    }
    ck_free(ck);
    return rc;
}

void ckpt_no_replace(Ckpt *ck) {
    ASSERT(ck && ck->tmp);
    ck->no_replace = 1;
}

void ckpt_abort(Ckpt *ck) {
    if (!ck) return;
    if (ck->file >= 0) H5Fclose(ck->file);
    if (ck->tmp) unlink(ck->tmp);
    ck_free(ck);
}

// Opens an existing HDF5 file with a clear reason for each way it can fail;
// `missing` is the hint when there is no such file.
static Ckpt *file_open(const char *path, const char *kind, unsigned flags, const char *missing) {
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT)
            rlhf_fail("%s %s: no such file; hint: %s", kind, path, missing);
        else
            rlhf_fail("%s %s: cannot access: %s; hint: check the path and permissions", kind,
                      path, strerror(errno));
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        rlhf_fail("%s %s: is a directory, not a file; hint: give the .h5 file inside it", kind,
                  path);
        return NULL;
    }
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) {
        if (is < 0 && access(path, R_OK) != 0)
            rlhf_fail("%s %s: cannot read: %s; hint: check permissions", kind, path,
                      strerror(errno));
        else
            rlhf_fail("%s %s: not an HDF5 file; hint: give a file written by rlhf.c", kind, path);
        return NULL;
    }
    hid_t fapl = fapl_strong();
    hid_t file = H5Fopen(path, flags, fapl);
    H5Fault f = fault_get();
    H5Pclose(fapl);
    if (file < 0) {
        if (f.truncated)
            rlhf_fail("%s %s: file is truncated (%lld bytes, shorter than HDF5 recorded); hint: "
                      "the write or copy was interrupted; use an earlier checkpoint", kind, path,
                      (long long)st.st_size);
        else
            rlhf_fail("%s %s: cannot open as HDF5 (%s); hint: the file is damaged or locked",
                      kind, path, f.desc);
        return NULL;
    }
    Ckpt *ck = callocCheck(1, sizeof *ck);
    ck->file = file;
    ck->kind = kind;
    ck->path = strdup_check(path);
    return ck;
}

void ckpt_close(Ckpt *ck) {
    if (!ck) return;
    ASSERT(!ck->tmp);  // a checkpoint being written ends with commit or abort
    H5Fclose(ck->file);
    ck_free(ck);
}

int ckpt_stage_known(const char *stage) {
    static const char *const known[] = {"init", "pretrain", "sft",    "reward",   "ppo",
                                        "dpo",  "import",   "tokenizer"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(stage, known[i])) return 1;
    return 0;
}

static int read_meta(Ckpt *ck, CkptMeta *meta) {
    char *format = NULL, *stage = NULL, *created = NULL;
    if (H5Aexists_by_name(ck->file, "/", "format", H5P_DEFAULT) <= 0)
        return rlhf_fail("checkpoint %s: foreign HDF5 file: no rlhf.c format attribute; hint: "
                         "give a checkpoint written by rlhf.c (token shards go in [data] dir)",
                         ck->path);
    if (attr_get_str(ck, "/", "format", &format)) return -1;
    int rc = 0, version = 0;
    if (strcmp(format, CKPT_FORMAT) != 0) {
        rc = rlhf_fail("checkpoint %s: foreign HDF5 file: format is '%s', expected '%s'; hint: "
                       "give a checkpoint written by rlhf.c", ck->path, format, CKPT_FORMAT);
    } else if (attr_get_int(ck, "/", "format_version", &version)) {
        rc = -1;
    } else if (version != CKPT_FORMAT_VERSION) {
        rc = rlhf_fail("checkpoint %s: format_version %d is not supported (this build reads "
                       "format_version %d only); hint: use the rlhf.c version that wrote it",
                       ck->path, version, CKPT_FORMAT_VERSION);
    } else if (attr_get_str(ck, "/", "stage", &stage) ||
               attr_get_i64(ck, "/", "step", &meta->step) ||
               attr_get_str(ck, "/", "config", &meta->config_json) ||
               attr_get_str(ck, "/", "parent", &meta->parent) ||
               attr_get_str(ck, "/", "created", &created)) {
        rc = -1;
    } else if (strlen(stage) >= sizeof meta->stage || strlen(created) >= sizeof meta->created) {
        rc = rlhf_fail("checkpoint %s: root attribute stage or created is too long; hint: the "
                       "file is damaged", ck->path);
    } else if (!ckpt_stage_known(stage)) {
        rc = rlhf_fail("checkpoint %s: stage '%.40s' is not one rlhf.c writes (%s); hint: the "
                       "file was edited or is damaged", ck->path, stage, CKPT_STAGES);
    } else if (meta->step < 0) {
        rc = rlhf_fail("checkpoint %s: step %lld is negative; hint: the file was edited or is "
                       "damaged", ck->path, (long long)meta->step);
    } else {
        strcpy(meta->stage, stage);
        strcpy(meta->created, created);
    }
    free(format);
    free(stage);
    free(created);
    return rc;
}

Ckpt *ckpt_open(const char *path, CkptMeta *meta) {
    CkptMeta scratch;
    CkptMeta *mt = meta ? meta : &scratch;
    memset(mt, 0, sizeof *mt);
    Ckpt *ck = file_open(path, "checkpoint", H5F_ACC_RDONLY,
                         "check the path (a run writes DIR/step_NNNNNN.h5 and DIR/latest.h5)");
    if (!ck) return NULL;
    timer_t *wd = watchdog_arm("checkpoint", path);
    int bad = attrs_verify(ck, &mt->sealed) || read_meta(ck, mt);
    watchdog_disarm(wd);
    if (bad) {
        ckpt_meta_free(mt);
        ckpt_close(ck);
        return NULL;
    }
    if (!meta) ckpt_meta_free(mt);
    return ck;
}

// --- models ------------------------------------------------------------------

// One stored dataset: copy `layer` of a table entry.
typedef struct {
    char name[96];      // nanoGPT name, e.g. transformer.h.3.attn.c_attn.weight
    const char *group;  // "model" | "heads"
    int ndim;
    hsize_t dims[2];    // [cols] or [rows, cols]
    size_t offset;      // first float in the flat buffer
} Tensor;

// Every dataset of a model with config c, in table order (absent tensors,
// e.g. no value head, are skipped). Returns the count; *out is malloc'd.
static int tensors_list(const GPTConfig *c, Tensor **out) {
    ParamInfo info[NUM_PARAM_TENSORS];
    gpt_param_layout(c, info);
    int n = 0, cap = NUM_PARAM_TENSORS * c->n_layer;
    Tensor *ts = mallocCheck((size_t)cap * sizeof *ts);
    for (int p = 0; p < NUM_PARAM_TENSORS; p++) {
        const ParamInfo *pi = &info[p];
        if (pi->size == 0) continue;
        int copies = pi->per_layer ? c->n_layer : 1;
        for (int l = 0; l < copies; l++) {
            ASSERT(n < cap);
            Tensor *t = &ts[n++];
            int len = pi->per_layer ? snprintf(t->name, sizeof t->name, pi->name, l)
                                    : snprintf(t->name, sizeof t->name, "%s", pi->name);
            ASSERT(len > 0 && (size_t)len < sizeof t->name);
            t->group = pi->group;
            t->ndim = pi->ndim;
            t->dims[0] = pi->ndim == 1 ? (hsize_t)pi->cols : (hsize_t)pi->rows;
            t->dims[1] = (hsize_t)pi->cols;
            t->offset = pi->offset + (size_t)l * (size_t)pi->rows * (size_t)pi->cols;
        }
    }
    *out = ts;
    return n;
}

int ckpt_write_model(Ckpt *ck, const char *prefix, const GPT *m) {
    ASSERT(ck && ck->tmp && m);
    const GPTConfig *c = &m->config;
    char path[PATH_MAX_LEN], group[PATH_MAX_LEN];
    path_join(group, prefix, "model");
    if (group_ensure(ck, group, 0) || attr_put_i32(ck, group, "n_layer", c->n_layer) ||
        attr_put_i32(ck, group, "n_head", c->n_head) ||
        attr_put_i32(ck, group, "n_embd", c->n_embd) ||
        attr_put_i32(ck, group, "block_size", c->block_size) ||
        attr_put_i32(ck, group, "vocab_size", c->vocab_size))
        return -1;
    Tensor *ts;
    int n = tensors_list(c, &ts), rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        char rel[160];
        snprintf(rel, sizeof rel, "%s/%s", ts[i].group, ts[i].name);
        path_join(path, prefix, rel);
        rc = dset_put(ck, path, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, ts[i].ndim, ts[i].dims,
                      m->params_memory + ts[i].offset);
    }
    free(ts);
    return rc;
}

int ckpt_has_model(Ckpt *ck, const char *prefix) {
    char group[PATH_MAX_LEN];
    path_join(group, prefix, "model");
    return object_type(ck->file, group) == H5I_GROUP;
}

int ckpt_read_model_config(Ckpt *ck, const char *prefix, GPTConfig *c) {
    char group[PATH_MAX_LEN], heads[PATH_MAX_LEN];
    path_join(group, prefix, "model");
    path_join(heads, prefix, "heads");
    if (object_type(ck->file, group) != H5I_GROUP) return read_fail_missing(ck, group);
    memset(c, 0, sizeof *c);
    if (attr_get_int(ck, group, "n_layer", &c->n_layer) ||
        attr_get_int(ck, group, "n_head", &c->n_head) ||
        attr_get_int(ck, group, "n_embd", &c->n_embd) ||
        attr_get_int(ck, group, "block_size", &c->block_size) ||
        attr_get_int(ck, group, "vocab_size", &c->vocab_size))
        return -1;
    c->value_head = object_type(ck->file, heads) == H5I_GROUP;
    // Bounds keep a damaged attribute from asking for terabytes.
    if (c->n_layer <= 0 || c->n_head <= 0 || c->n_embd <= 0 || c->block_size <= 0 ||
        c->vocab_size <= 0 || c->n_layer > GPT_MAX_N_LAYER || c->n_embd > GPT_MAX_N_EMBD ||
        c->block_size > GPT_MAX_BLOCK_SIZE || c->vocab_size > GPT_MAX_VOCAB_SIZE ||
        c->n_embd % c->n_head != 0)
        return rlhf_fail("checkpoint %s: %s has an invalid config (n_layer=%d n_head=%d n_embd=%d "
                         "block_size=%d vocab_size=%d); hint: the file is damaged",
                         ck->path, group, c->n_layer, c->n_head, c->n_embd, c->block_size,
                         c->vocab_size);
    // The attributes must agree with what is stored: embedding shapes, the
    // number of blocks and the tokenizer's vocabulary.
    const char *hint = "the file is damaged or was edited";
    char path[PATH_MAX_LEN], rel[128];
    hsize_t wte[2] = {(hsize_t)c->vocab_size, (hsize_t)c->n_embd};
    hsize_t wpe[2] = {(hsize_t)c->block_size, (hsize_t)c->n_embd};
    path_join(path, prefix, "model/transformer.wte.weight");
    hid_t d = dset_open(ck, path, H5T_IEEE_F32LE, 2, wte, NULL, hint);
    if (d < 0) return -1;
    H5Dclose(d);
    path_join(path, prefix, "model/transformer.wpe.weight");
    if ((d = dset_open(ck, path, H5T_IEEE_F32LE, 2, wpe, NULL, hint)) < 0) return -1;
    H5Dclose(d);
    // a block past n_layer (its first table tensor) must not exist
    ParamInfo info[NUM_PARAM_TENSORS];
    gpt_param_layout(c, info);
    char name[96];
    snprintf(name, sizeof name, info[PARAM_ln1w].name, c->n_layer);
    snprintf(rel, sizeof rel, "model/%s", name);
    path_join(path, prefix, rel);
    if (link_exists(ck->file, path))
        return rlhf_fail("checkpoint %s: %s says n_layer=%d but holds %s; hint: %s", ck->path,
                         group, c->n_layer, path, hint);
    int tok_vocab;
    if (object_type(ck->file, "/tokenizer") == H5I_GROUP &&
        attr_get_int(ck, "/tokenizer", "vocab_size", &tok_vocab) == 0 &&
        tok_vocab != c->vocab_size)
        return rlhf_fail("checkpoint %s: %s has vocab_size=%d but /tokenizer has %d; hint: %s",
                         ck->path, group, c->vocab_size, tok_vocab, hint);
    return 0;
}

// Checks every dataset under PREFIX/BASE/<group>/<name> (or, with flat,
// PREFIX/BASE/<name>) against m's table, then reads them into `dst` (m's
// layout); dst NULL only checks. Nothing is read unless every shape matches.
static int tensors_read(Ckpt *ck, const char *prefix, const char *base, int flat, const GPT *m,
                        float *dst, int skip_heads, const char *hint) {
    Tensor *ts;
    int n = tensors_list(&m->config, &ts), rc = 0;
    hid_t *ds = mallocCheck((size_t)n * sizeof *ds);
    char(*paths)[PATH_MAX_LEN] = mallocCheck((size_t)n * sizeof *paths);
    int opened = 0;
    for (int i = 0; i < n && !rc; i++) {
        char rel[PATH_MAX_LEN];
        ds[i] = -1;
        if (skip_heads && strcmp(ts[i].group, "heads") == 0) continue;
        if (flat) snprintf(rel, sizeof rel, "%s/%s", base, ts[i].name);
        else snprintf(rel, sizeof rel, "%s%s%s/%s", base, base[0] ? "/" : "", ts[i].group,
                      ts[i].name);
        path_join(paths[i], prefix, rel);
        ds[i] = dset_open(ck, paths[i], H5T_IEEE_F32LE, ts[i].ndim, ts[i].dims, NULL, hint);
        if (ds[i] < 0) rc = -1;
        opened = i + 1;
    }
    for (int i = 0; i < opened; i++) {
        if (ds[i] < 0) continue;
        if (rc || !dst) {
            H5Dclose(ds[i]);
            continue;
        }
        rc = dset_read(ck, ds[i], paths[i], H5T_NATIVE_FLOAT, dst + ts[i].offset);
        // a NaN or Inf weight samples garbage and trains to NaN: refused here,
        // where the file can be named
        size_t count = ts[i].ndim == 1 ? ts[i].dims[0] : ts[i].dims[0] * ts[i].dims[1];
        size_t bad = 0;
        for (size_t k = 0; rc == 0 && k < count; k++) bad += !isfinite(dst[ts[i].offset + k]);
        if (bad)
            rc = rlhf_fail("%s %s: dataset %s holds %zu non-finite values (NaN or Inf) of %zu; "
                           "hint: the run that wrote it diverged or the file was edited; use "
                           "an earlier checkpoint", ck->kind, ck->path, paths[i], bad, count);
    }
    free(paths);
    free(ds);
    free(ts);
    return rc;
}

int ckpt_read_model(Ckpt *ck, const char *prefix, GPT *m, int allow_missing_head) {
    ASSERT(ck && !ck->tmp && m);
    GPTConfig fc;
    if (ckpt_read_model_config(ck, prefix, &fc)) return -1;
    const GPTConfig *c = &m->config;
    char group[PATH_MAX_LEN], heads[PATH_MAX_LEN], hint[256];
    path_join(group, prefix, "model");
    path_join(heads, prefix, "heads");
    snprintf(hint, sizeof hint, "the checkpoint holds n_layer=%d n_head=%d n_embd=%d "
             "block_size=%d vocab_size=%d; build the model with that config",
             fc.n_layer, fc.n_head, fc.n_embd, fc.block_size, fc.vocab_size);
    // A head in the file that m lacks is ignored (the table has no slot).
    int skip_heads = 0;
    if (c->value_head && !fc.value_head) {
        if (!allow_missing_head)
            return rlhf_fail("checkpoint %s: no value head (%s is missing); hint: give a "
                             "reward-model or critic checkpoint, or start the head fresh from "
                             "a policy checkpoint", ck->path, heads);
        skip_heads = 1;
    }
    // Shapes first: they name the dataset that differs. n_head and extra
    // blocks leave no trace in the shapes, so compare the config after.
    if (tensors_read(ck, prefix, "", 0, m, NULL, skip_heads, hint) != 0) return -1;
    if (fc.n_layer != c->n_layer || fc.n_head != c->n_head || fc.n_embd != c->n_embd ||
        fc.block_size != c->block_size || fc.vocab_size != c->vocab_size)
        return rlhf_fail("checkpoint %s: %s does not match the model built with n_layer=%d "
                         "n_head=%d n_embd=%d block_size=%d vocab_size=%d; hint: %s", ck->path,
                         group, c->n_layer, c->n_head, c->n_embd, c->block_size, c->vocab_size,
                         hint);
    gpt_params_changed(m);
    return tensors_read(ck, prefix, "", 0, m, m->params_memory, skip_heads, hint);
}

// --- optimizer -----------------------------------------------------------------
// Moments live flat under PREFIX/optimizer/{m,v}/<name>: the value head's
// tensors too (optimizer/m/value.weight), as their names do not collide
// with the transformer's.

int ckpt_write_optimizer(Ckpt *ck, const char *prefix, const AdamW *opt, const GPT *m) {
    ASSERT(ck && ck->tmp && opt && m && opt->n == m->num_params);
    char group[PATH_MAX_LEN], path[PATH_MAX_LEN];
    path_join(group, prefix, "optimizer");
    if (group_ensure(ck, group, 0) || attr_put_i64(ck, group, "t", opt->t) ||
        attr_put_f32(ck, group, "lr", opt->lr) || attr_put_f32(ck, group, "beta1", opt->beta1) ||
        attr_put_f32(ck, group, "beta2", opt->beta2) || attr_put_f32(ck, group, "eps", opt->eps) ||
        attr_put_f32(ck, group, "weight_decay", opt->weight_decay))
        return -1;
    Tensor *ts;
    int n = tensors_list(&m->config, &ts), rc = 0;
    for (int k = 0; k < 2 && !rc; k++) {
        const float *src = k == 0 ? opt->m : opt->v;
        for (int i = 0; i < n && !rc; i++) {
            char rel[160];
            snprintf(rel, sizeof rel, "optimizer/%s/%s", k == 0 ? "m" : "v", ts[i].name);
            path_join(path, prefix, rel);
            rc = dset_put(ck, path, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, ts[i].ndim, ts[i].dims,
                          src + ts[i].offset);
        }
    }
    free(ts);
    return rc;
}

int ckpt_has_optimizer(Ckpt *ck, const char *prefix) {
    char group[PATH_MAX_LEN];
    path_join(group, prefix, "optimizer");
    return object_type(ck->file, group) == H5I_GROUP;
}

int ckpt_read_optimizer(Ckpt *ck, const char *prefix, AdamW *opt, const GPT *m) {
    ASSERT(ck && !ck->tmp && opt && m && opt->n == m->num_params);
    char group[PATH_MAX_LEN];
    path_join(group, prefix, "optimizer");
    if (object_type(ck->file, group) != H5I_GROUP) return read_fail_missing(ck, group);
    AdamW h = *opt;
    if (attr_get_i64(ck, group, "t", &h.t) || attr_get_f32(ck, group, "lr", &h.lr) ||
        attr_get_f32(ck, group, "beta1", &h.beta1) ||
        attr_get_f32(ck, group, "beta2", &h.beta2) || attr_get_f32(ck, group, "eps", &h.eps) ||
        attr_get_f32(ck, group, "weight_decay", &h.weight_decay))
        return -1;
    if (h.t < 0)
        return rlhf_fail("checkpoint %s: %s has step count t=%lld; hint: the file is damaged",
                         ck->path, group, (long long)h.t);
    const char *hint = "the optimizer state belongs to a different model; resume with the "
                       "model config stored in the checkpoint";
    char base_m[PATH_MAX_LEN], base_v[PATH_MAX_LEN];
    snprintf(base_m, sizeof base_m, "optimizer/m");
    snprintf(base_v, sizeof base_v, "optimizer/v");
    // check both sets of shapes before reading anything
    if (tensors_read(ck, prefix, base_m, 1, m, NULL, 0, hint) ||
        tensors_read(ck, prefix, base_v, 1, m, NULL, 0, hint) ||
        tensors_read(ck, prefix, base_m, 1, m, opt->m, 0, hint) ||
        tensors_read(ck, prefix, base_v, 1, m, opt->v, 0, hint))
        return -1;
    opt->t = h.t;
    opt->lr = h.lr;
    opt->beta1 = h.beta1;
    opt->beta2 = h.beta2;
    opt->eps = h.eps;
    opt->weight_decay = h.weight_decay;
    return 0;
}

// --- tokenizer -----------------------------------------------------------------

int ckpt_write_tokenizer(Ckpt *ck, const Tokenizer *tok) {
    ASSERT(ck && ck->tmp && tok && tok->vocab_size > 0 && tok->vocab_offsets);
    ASSERT(tok->type == TOKENIZER_CHAR || tok->type == TOKENIZER_BPE || tok->type == TOKENIZER_GPT2);
    const char *g = "/tokenizer";
    if (group_ensure(ck, g, 0) || attr_put_str(ck, g, "type", tokenizer_type_name(tok->type)) ||
        attr_put_i32(ck, g, "vocab_size", tok->vocab_size) ||
        attr_put_i32(ck, g, "eot", tok->eot) || attr_put_i32(ck, g, "user", tok->user) ||
        attr_put_i32(ck, g, "assistant", tok->assistant) || attr_put_i32(ck, g, "pad", tok->pad))
        return -1;
    hsize_t nbytes = (hsize_t)tok->vocab_offsets[tok->vocab_size];
    hsize_t noffsets = (hsize_t)tok->vocab_size + 1;
    hsize_t merges[2] = {(hsize_t)tok->n_merges, 2};
    return dset_put(ck, "/tokenizer/vocab_bytes", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, &nbytes,
                    tok->vocab_bytes) ||
           dset_put(ck, "/tokenizer/vocab_offsets", H5T_STD_I32LE, H5T_NATIVE_INT, 1, &noffsets,
                    tok->vocab_offsets) ||
           dset_put(ck, "/tokenizer/merges", H5T_STD_I32LE, H5T_NATIVE_INT, 2, merges,
                    tok->merges) ? -1 : 0;
}

// Fills the stored fields; the caller frees them on failure.
static int tokenizer_fields_read(Ckpt *ck, Tokenizer *tok) {
    const char *g = "/tokenizer", *hint = "the file is damaged";
    char *type = NULL;
    if (object_type(ck->file, g) != H5I_GROUP) return read_fail_missing(ck, g);
    if (attr_get_str(ck, g, "type", &type)) return -1;
    int known = strcmp(type, "char") == 0 || strcmp(type, "bpe") == 0 || strcmp(type, "gpt2") == 0;
    tok->type = strcmp(type, "gpt2") == 0  ? TOKENIZER_GPT2
                : strcmp(type, "bpe") == 0 ? TOKENIZER_BPE
                                           : TOKENIZER_CHAR;
    if (!known) {
        rlhf_fail("checkpoint %s: /tokenizer has type '%s', expected 'char', 'bpe' or 'gpt2'; hint: %s",
                  ck->path, type, hint);
        free(type);
        return -1;
    }
    free(type);
    if (attr_get_int(ck, g, "vocab_size", &tok->vocab_size) ||
        attr_get_int(ck, g, "eot", &tok->eot) || attr_get_int(ck, g, "user", &tok->user) ||
        attr_get_int(ck, g, "assistant", &tok->assistant) || attr_get_int(ck, g, "pad", &tok->pad))
        return -1;
    const int V = tok->vocab_size;
    if (V <= 0 || V > GPT_MAX_VOCAB_SIZE)
        return rlhf_fail("checkpoint %s: /tokenizer has vocab_size=%d; hint: %s", ck->path, V,
                         hint);
    int ids[4] = {tok->eot, tok->user, tok->assistant, tok->pad};
    for (int i = 0; i < 4; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return rlhf_fail("checkpoint %s: /tokenizer special token id %d is outside [0, %d); "
                             "hint: %s", ck->path, ids[i], V, hint);
    hsize_t noffsets = (hsize_t)V + 1, nbytes, merges[2];
    hid_t d_off = dset_open(ck, "/tokenizer/vocab_offsets", H5T_STD_I32LE, 1, &noffsets, NULL, hint);
    if (d_off < 0) return -1;
    tok->vocab_offsets = mallocCheck((size_t)noffsets * sizeof(int));
    if (dset_read(ck, d_off, "/tokenizer/vocab_offsets", H5T_NATIVE_INT, tok->vocab_offsets))
        return -1;
    hid_t d_bytes = dset_open(ck, "/tokenizer/vocab_bytes", H5T_STD_U8LE, 1, NULL, &nbytes, hint);
    if (d_bytes < 0) return -1;
    const int *off = tok->vocab_offsets;
    int ok = off[0] == 0 && (hsize_t)off[V] == nbytes;
    for (int i = 0; i < V && ok; i++) ok = off[i] <= off[i + 1];
    if (!ok) {
        H5Dclose(d_bytes);
        return rlhf_fail("checkpoint %s: /tokenizer/vocab_offsets do not index vocab_bytes "
                         "(%llu bytes); hint: %s", ck->path, (unsigned long long)nbytes, hint);
    }
    tok->vocab_bytes = mallocCheck((size_t)nbytes);
    if (dset_read(ck, d_bytes, "/tokenizer/vocab_bytes", H5T_NATIVE_UINT8, tok->vocab_bytes))
        return -1;
    hid_t d_m = dset_open(ck, "/tokenizer/merges", H5T_STD_I32LE, 2, NULL, merges, hint);
    if (d_m < 0) return -1;
    if (merges[1] != 2 || merges[0] > (hsize_t)V) {
        H5Dclose(d_m);
        return rlhf_fail("checkpoint %s: /tokenizer/merges has shape [%llu, %llu], expected "
                         "[n_merges, 2] with n_merges < vocab_size; hint: %s", ck->path,
                         (unsigned long long)merges[0], (unsigned long long)merges[1], hint);
    }
    tok->n_merges = (int)merges[0];
    tok->merges = tok->n_merges ? mallocCheck((size_t)tok->n_merges * 2 * sizeof(int)) : NULL;
    return dset_read(ck, d_m, "/tokenizer/merges", H5T_NATIVE_INT, tok->merges);
}

int ckpt_read_tokenizer(Ckpt *ck, Tokenizer *tok) {
    ASSERT(ck && !ck->tmp && tok);
    memset(tok, 0, sizeof *tok);
    int rc = tokenizer_fields_read(ck, tok);
    if (rc == 0 && tokenizer_finish(tok) != 0) {
        char why[sizeof rlhf_errmsg];
        memcpy(why, rlhf_errmsg, sizeof why);
        rc = rlhf_fail("checkpoint %s: /tokenizer is inconsistent: %s", ck->path, why);
    }
    if (rc) {
        tokenizer_free(tok);
        memset(tok, 0, sizeof *tok);
    }
    return rc;
}

// --- metrics ---------------------------------------------------------------------

int ckpt_write_metrics(Ckpt *ck, const Metrics *mt) {
    ASSERT(ck && ck->tmp && mt);
    if (group_ensure(ck, "/metrics", 1)) return -1;
    for (int c = 0; c < mt->ncols; c++) {
        const char *name = mt->names[c];
        if (!metrics_name_valid(name) || strlen(name) > PATH_MAX_LEN - 16) {
            rlhf_fail("checkpoint %s: metrics column name '%s' cannot be a dataset path; "
                      "hint: use names like 'loss' or 'rewards/chosen'", ck->path, name);
            return mark_failed(ck);
        }
        char path[PATH_MAX_LEN];
        path_join(path, "metrics", name);
        // "a/b/x": groups /metrics/a and /metrics/a/b, which list their
        // members in creation order too
        for (char *slash = strchr(path + 9, '/'); slash; slash = strchr(slash + 1, '/')) {
            *slash = '\0';
            int rc = group_ensure(ck, path, 1);
            *slash = '/';
            if (rc) return -1;
        }
        hsize_t n = (hsize_t)mt->nrows;
        if (dset_put(ck, path, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, &n, mt->cols[c])) return -1;
    }
    return 0;
}


// The metrics columns under group PATH ("/metrics" or one of its subgroups),
// as names relative to /metrics, appended to out: members in creation order
// (name order if the group does not track it), a subgroup's columns in its
// place. Depth is bounded by PATH_MAX_LEN.
static int metrics_names(Ckpt *ck, const char *path, NameList *out) {
    hid_t g = H5Gopen2(ck->file, path, H5P_DEFAULT);
    if (g < 0)
        return rlhf_fail("checkpoint %s: %s is not a group; hint: the file is damaged", ck->path,
                         path);
    NameList l = {0, 0, NULL};
    if (H5Literate(g, H5_INDEX_CRT_ORDER, H5_ITER_INC, NULL, name_collect, &l) < 0) {
        name_list_free(&l);
        H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, name_collect, &l);
    }
    H5Gclose(g);
    int rc = 0;
    const size_t skip = strlen("/metrics/");
    for (int i = 0; i < l.n && !rc; i++) {
        char child[PATH_MAX_LEN];
        int n = snprintf(child, sizeof child, "%s/%s", path, l.names[i]);
        if (n < 0 || n >= (int)sizeof child) {
            rc = rlhf_fail("checkpoint %s: a metrics path under %s is too long; hint: the file "
                           "is damaged", ck->path, path);
            break;
        }
        if (object_type(ck->file, child) == H5I_GROUP)
            rc = metrics_names(ck, child, out);
        else if (!metrics_name_valid(child + skip))
            rc = rlhf_fail("checkpoint %s: %s cannot be a metrics column name; hint: the file "
                           "was not written by rlhf", ck->path, child);
        else
            name_list_add(out, child + skip);
    }
    name_list_free(&l);
    return rc;
}

int ckpt_read_metrics(Ckpt *ck, Metrics *mt) {
    ASSERT(ck && !ck->tmp && mt);
    // No /metrics group is an empty history, not an error.
    if (!link_exists(ck->file, "/metrics")) return 0;
    // creation order keeps the columns as written
    NameList l = {0, 0, NULL};
    if (metrics_names(ck, "/metrics", &l) != 0) {
        name_list_free(&l);
        return -1;
    }
    int rc = 0;
    hsize_t nrows = 0;
    double **cols = callocCheck((size_t)l.n + 1, sizeof *cols);
    for (int i = 0; i < l.n && !rc; i++) {
        char path[PATH_MAX_LEN];
        hsize_t dims;
        path_join(path, "metrics", l.names[i]);
        hid_t d = dset_open(ck, path, H5T_IEEE_F64LE, 1, NULL, &dims, "the file is damaged");
        if (d < 0) {
            rc = -1;
            break;
        }
        if (i == 0) nrows = dims;
        if (dims != nrows) {
            H5Dclose(d);
            rc = rlhf_fail("checkpoint %s: %s has %llu rows but /metrics/%s has %llu; hint: the "
                           "file is damaged", ck->path, path, (unsigned long long)dims,
                           l.names[0], (unsigned long long)nrows);
            break;
        }
        cols[i] = mallocCheck((size_t)dims * sizeof(double));
        rc = dset_read(ck, d, path, H5T_NATIVE_DOUBLE, cols[i]);
    }
    if (!rc && l.n > 0 && mt->ncols > 0 && (size_t)nrows != mt->nrows)
        rc = rlhf_fail("checkpoint %s: /metrics has %llu rows but the table to fill already has "
                       "%zu; hint: read metrics into a fresh table", ck->path,
                       (unsigned long long)nrows, mt->nrows);
    // add to mt only when every column was read
    for (int i = 0; i < l.n; i++) {
        if (!rc) metrics_add_column(mt, l.names[i], cols[i], (size_t)nrows);
        free(cols[i]);
        free(l.names[i]);
    }
    free(cols);
    free(l.names);
    return rc;
}

// --- state -------------------------------------------------------------------------

static int state_path(Ckpt *ck, const char *name, char path[PATH_MAX_LEN]) {
    if (!name[0] || name[0] == '/' || name[strlen(name) - 1] == '/' || strstr(name, "//") ||
        strlen(name) > PATH_MAX_LEN - 16)
        return rlhf_fail("%s %s: bad state name '%s'; hint: use names like 'rng' or "
                         "'data/cursor'", ck->kind, ck->path, name);
    path_join(path, "state", name);
    return 0;
}

static int state_write(Ckpt *ck, const char *name, hid_t ftype, hid_t mtype, const void *data,
                       size_t n) {
    ASSERT(ck && ck->tmp && (data || n == 0));
    char path[PATH_MAX_LEN];
    if (state_path(ck, name, path)) return mark_failed(ck);
    hsize_t dims = (hsize_t)n;
    return dset_put(ck, path, ftype, mtype, 1, &dims, data);
}

static int state_read(Ckpt *ck, const char *name, hid_t ftype, hid_t mtype, void *data, size_t n) {
    ASSERT(ck && !ck->tmp && (data || n == 0));
    char path[PATH_MAX_LEN];
    if (state_path(ck, name, path)) return -1;
    hsize_t dims = (hsize_t)n;
    hid_t d = dset_open(ck, path, ftype, 1, &dims, NULL,
                        "the checkpoint was written by another stage or version");
    return d < 0 ? -1 : dset_read(ck, d, path, mtype, data);
}

int ckpt_write_i64(Ckpt *ck, const char *name, const int64_t *data, size_t n) {
    return state_write(ck, name, H5T_STD_I64LE, H5T_NATIVE_INT64, data, n);
}
int ckpt_write_u64(Ckpt *ck, const char *name, const uint64_t *data, size_t n) {
    return state_write(ck, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, data, n);
}
int ckpt_write_f64(Ckpt *ck, const char *name, const double *data, size_t n) {
    return state_write(ck, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, data, n);
}
int ckpt_read_i64(Ckpt *ck, const char *name, int64_t *data, size_t n) {
    return state_read(ck, name, H5T_STD_I64LE, H5T_NATIVE_INT64, data, n);
}
int ckpt_read_u64(Ckpt *ck, const char *name, uint64_t *data, size_t n) {
    return state_read(ck, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, data, n);
}
int ckpt_read_f64(Ckpt *ck, const char *name, double *data, size_t n) {
    return state_read(ck, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, data, n);
}

int ckpt_write_data_state(Ckpt *ck, const DataState *d) {
    const uint64_t u[5] = {d->rng[0], d->rng[1], d->rng[2], d->rng[3], d->cursor};
    return ckpt_write_u64(ck, "data", u, 5);
}
int ckpt_read_data_state(Ckpt *ck, DataState *d) {
    uint64_t u[5];
    if (ckpt_read_u64(ck, "data", u, 5) != 0) return -1;
    memcpy(d->rng, u, sizeof d->rng);
    d->cursor = u[4];
    return 0;
}

int ckpt_write_str(Ckpt *ck, const char *name, const char *text) {
    return state_write(ck, name, H5T_STD_U8LE, H5T_NATIVE_UCHAR, text, strlen(text));
}

int ckpt_read_str(Ckpt *ck, const char *name, char **text) {
    ASSERT(ck && !ck->tmp);
    *text = NULL;
    char path[PATH_MAX_LEN];
    if (state_path(ck, name, path)) return -1;
    hsize_t n;
    hid_t d = dset_open(ck, path, H5T_STD_U8LE, 1, NULL, &n,
                        "the checkpoint was written by another stage or version");
    if (d < 0) return -1;
    char *buf = mallocCheck((size_t)n + 1);
    if (dset_read(ck, d, path, H5T_NATIVE_UCHAR, buf) != 0) {
        free(buf);
        return -1;
    }
    buf[n] = '\0';
    if (memchr(buf, '\0', (size_t)n)) {
        free(buf);
        return rlhf_fail("%s %s: %s holds a NUL byte; hint: the file was edited", ck->kind,
                         ck->path, path);
    }
    *text = buf;
    return 0;
}

int ckpt_has_state(Ckpt *ck, const char *name) {
    char path[PATH_MAX_LEN];
    if (!name[0] || strlen(name) > PATH_MAX_LEN - 16) return 0;
    path_join(path, "state", name);
    return object_type(ck->file, path) == H5I_DATASET;
}

// --- sha256 ----------------------------------------------------------------------

int file_sha256(const char *path, char out[65]) {
    FILE *f = fopen(path, "rb");
    if (!f) return rlhf_fail("cannot read %s: %s; hint: check the path", path, strerror(errno));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    ASSERT(ctx);
    int ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
    size_t cap = 1 << 20, n;
    unsigned char *buf = mallocCheck(cap);
    while (ok && (n = fread(buf, 1, cap, f)) > 0) ok = EVP_DigestUpdate(ctx, buf, n) == 1;
    int read_error = ferror(f);
    fclose(f);
    free(buf);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (ok && !read_error) ok = EVP_DigestFinal_ex(ctx, md, &len) == 1 && len == 32;
    EVP_MD_CTX_free(ctx);
    if (read_error) return rlhf_fail("cannot read %s: I/O error; hint: check the disk", path);
    ASSERT(ok);  // sha256 itself does not fail
    for (unsigned i = 0; i < 32; i++) sprintf(out + 2 * i, "%02x", md[i]);
    out[64] = '\0';
    return 0;
}

// --- token shards -------------------------------------------------------------------
// /tokens holds the ids; vocab_size and tokenizer_hash are attributes of the
// root group (the file's metadata).

int shard_write(const char *path, const int *tokens, size_t n, int vocab_size,
                uint64_t tokenizer_hash) {
    ASSERT(path && (tokens || n == 0));
    if (vocab_size <= 0)
        return rlhf_fail("shard %s: vocab_size %d must be positive; hint: build the tokenizer "
                         "first", path, vocab_size);
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= vocab_size)
            return rlhf_fail("shard %s: token %d at position %zu is outside [0, %d); hint: the "
                             "tokenizer and the vocab_size disagree", path, tokens[i], i,
                             vocab_size);
    Ckpt *ck = tmp_create(path, "shard");
    if (!ck) return -1;
    // ids were checked, so HDF5's int -> uint16/uint32 conversion is exact
    hid_t ftype = vocab_size < 65536 ? H5T_STD_U16LE : H5T_STD_U32LE;
    hsize_t dims = (hsize_t)n;
    if (dset_put(ck, "/tokens", ftype, H5T_NATIVE_INT, 1, &dims, tokens) ||
        attr_put_i32(ck, "/", "vocab_size", vocab_size) ||
        attr_put(ck, "/", "tokenizer_hash", H5T_STD_U64LE, H5T_NATIVE_UINT64, &tokenizer_hash)) {
        ckpt_abort(ck);  // keeps rlhf_errmsg
        return -1;
    }
    return ckpt_commit(ck);
}

int shard_read_for(const char *dir, const char *name, const Tokenizer *tok, int **tokens,
                   size_t *n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int vocab;
    uint64_t hash;
    if (shard_read(path, tokens, n, &vocab, &hash) != 0) return -1;
    if (vocab != tok->vocab_size || hash != tokenizer_hash(tok)) {
        free(*tokens);
        *tokens = NULL;
        return rlhf_fail("%s was not made with the tokenizer of this run (vocab %d vs %d); "
                         "hint: run 'rlhf prepare' again for data.dir=%s", path, vocab,
                         tok->vocab_size, dir);
    }
    return 0;
}

int shard_read(const char *path, int **tokens, size_t *n, int *vocab_size,
               uint64_t *tokenizer_hash) {
    *tokens = NULL;
    *n = 0;
    Ckpt *ck = file_open(path, "shard", H5F_ACC_RDONLY,
                         "check [data] dir, or run `rlhf prepare` to write the shards");
    if (!ck) return -1;
    const char *hint = "rerun `rlhf prepare` to rebuild the shards";
    int V = 0, rc = 0, sealed;
    uint64_t hash = 0;
    hsize_t dims = 0;
    hid_t d = -1;
    timer_t *wd = watchdog_arm("shard", path);
    int bad = attrs_verify(ck, &sealed);
    watchdog_disarm(wd);
    if (bad || attr_get_int(ck, "/", "vocab_size", &V) ||
        attr_get(ck, "/", "tokenizer_hash", H5T_INTEGER, H5T_NATIVE_UINT64, &hash)) {
        rc = -1;
    } else if (V <= 0) {
        rc = rlhf_fail("shard %s: vocab_size %d must be positive; hint: %s", path, V, hint);
    } else {
        // stored as uint16 or uint32: the dtype check only needs "unsigned"
        hid_t want = V < 65536 ? H5T_STD_U16LE : H5T_STD_U32LE;
        d = dset_open(ck, "/tokens", want, 1, NULL, &dims, hint);
        if (d < 0) rc = -1;
    }
    int *buf = NULL;
    if (!rc) {
        // values beyond INT_MAX clamp to INT_MAX in the conversion and fail
        // the range check below
        buf = mallocCheck((size_t)dims * sizeof *buf);
        rc = dset_read(ck, d, "/tokens", H5T_NATIVE_INT, buf);
    }
    for (size_t i = 0; !rc && i < (size_t)dims; i++)
        if (buf[i] < 0 || buf[i] >= V)
            rc = rlhf_fail("shard %s: token %d at position %zu is not below vocab_size %d; "
                           "hint: the shard is damaged or belongs to another tokenizer; %s",
                           path, buf[i], i, V, hint);
    ckpt_close(ck);
    if (rc) {
        free(buf);
        return -1;
    }
    *tokens = buf;
    *n = (size_t)dims;
    if (vocab_size) *vocab_size = V;
    if (tokenizer_hash) *tokenizer_hash = hash;
    return 0;
}

// --- rollout dumps ------------------------------------------------------------------

// Copies src to dst, made fresh (a stale dst, even a link, is removed
// first); on failure dst is removed. The caller syncs dst.
static int copy_file(const char *src, const char *dst, const char *kind) {
    int in = open(src, O_RDONLY), out = -1;
    if (in >= 0 && (unlink(dst) == 0 || errno == ENOENT))
        out = open(dst, O_WRONLY | O_CREAT | O_EXCL, 0644);
    int e = (in < 0 || out < 0) ? errno : 0;
    char buf[1 << 16];
    for (ssize_t n; !e && (n = read(in, buf, sizeof buf)) != 0;) {
        if (n < 0) {
            if (errno != EINTR) e = errno;
            continue;
        }
        for (ssize_t off = 0; !e && off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno != EINTR) e = errno;
            if (w > 0) off += w;
        }
    }
    if (in >= 0) close(in);
    if (out >= 0 && close(out) != 0 && !e) e = errno;
    if (!e) return 0;
    if (out >= 0) unlink(dst);
    return rlhf_fail("%s %s: cannot copy it to %s: %s; hint: check free disk space and that "
                     "the directory is writable", kind, src, dst, strerror(e));
}

int rollout_dump_append(const char *path, int64_t step, int rows, int cols,
                        const DumpColumn *columns, int ncolumns) {
    ASSERT(path && rows >= 0 && cols >= 0 && (columns || ncolumns == 0));
    // Every append rewrites the file through PATH.tmp and renames it over
    // PATH, so a crash or a full disk leaves the dump as the last batch left
    // it. The copy is cheap next to a PPO step (the demo's dump grows by
    // about 17 kB a batch).
    const char *kind = "rollout dump";
    Ckpt *ck;
    if (access(path, F_OK) == 0) {
        Ckpt *old = file_open(path, kind, H5F_ACC_RDONLY, "check the path");
        if (!old) return -1;
        ckpt_close(old);
        char *tmp = mallocCheck(strlen(path) + 5);
        sprintf(tmp, "%s.tmp", path);
        if (copy_file(path, tmp, kind) != 0) {
            free(tmp);
            return -1;
        }
        ck = file_open(tmp, kind, H5F_ACC_RDWR, "check the path");
        if (!ck) {
            unlink(tmp);
            free(tmp);
            return -1;
        }
        free(ck->path);
        ck->path = strdup_check(path);
        ck->tmp = tmp;
    } else {
        ck = tmp_create(path, kind);
        if (!ck) return -1;
    }
    char group[64], dpath[PATH_MAX_LEN];
    snprintf(group, sizeof group, "/batch_%06lld", (long long)step);
    // The file holds one history. A resumed run dumps again from its
    // checkpoint's step: this batch and every later one (written before the
    // interruption) are replaced, so no stale batch outlives the rewrite.
    NameList l = {0, 0, NULL};
    H5Literate(ck->file, H5_INDEX_NAME, H5_ITER_INC, NULL, name_collect, &l);
    for (int i = 0; i < l.n; i++) {
        long long s;
        char tail;
        if (sscanf(l.names[i], "batch_%lld%c", &s, &tail) == 1 && s >= step)
            H5Ldelete(ck->file, l.names[i], H5P_DEFAULT);
        free(l.names[i]);
    }
    free(l.names);
    int rc = group_ensure(ck, group, 1) || attr_put_i64(ck, group, "step", step) ? -1 : 0;
    for (int c = 0; c < ncolumns && !rc; c++) {
        const DumpColumn *col = &columns[c];
        hsize_t dims[2] = {(hsize_t)rows, (hsize_t)(col->cols > 0 ? col->cols : cols)};
        ASSERT(col->name && col->name[0] && !strchr(col->name, '/'));
        int n = snprintf(dpath, sizeof dpath, "%s/%s", group, col->name);
        ASSERT(n > 0 && (size_t)n < sizeof dpath);
        rc = col->is_int ? dset_put(ck, dpath, H5T_STD_I32LE, H5T_NATIVE_INT, 2, dims, col->i)
                         : dset_put(ck, dpath, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims, col->f);
    }
    herr_t st = H5Fclose(ck->file);
    H5Fault f = fault_get();
    if (!rc && st < 0)
        rc = rlhf_fail("rollout dump %s: cannot finish writing (%s); hint: check free disk space",
                       path, f.desc);
    if (rc == 0) rc = atomic_install(ck->tmp, path, 0);  // removes the tmp if it fails
    else unlink(ck->tmp);
    ck_free(ck);
    return rc;
}
