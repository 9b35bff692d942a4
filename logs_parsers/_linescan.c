/*
 * Which lines of a buffer hold one of a few byte strings, and how many lines it has, in one
 * pass over its bytes.
 *
 * The relevant-path reader looks at every byte of gigabytes of logs for a handful of needles
 * and counts every line on the way: with a general regex engine for the first and
 * `bytes.count` for the second, each byte was visited twice, at about a gigabyte a second each.
 * Here each 16-byte block is loaded once: its line ends are counted, and for each needle the
 * two of its bytes least common in logs are compared at their offsets, so that a needle is
 * compared whole only where both match (SSE2, which every x86-64 processor has; a byte loop
 * where it is missing, and for the last bytes of a buffer).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#if defined(__x86_64__) && defined(__SSE2__)
#include <immintrin.h>
#define VECTORS 1
#endif

#define MAX_NEEDLES 128

typedef struct {
    const unsigned char *bytes; /* owned by the bytes objects the type keeps */
    Py_ssize_t size;
    Py_ssize_t first, second; /* offsets of the two anchor bytes */
    Py_ssize_t group;
} Needle;

typedef struct {
    PyObject_HEAD
    PyObject *kept; /* the needles' bytes objects, kept alive */
    Needle *needles;
    Py_ssize_t count;
    Py_ssize_t groups;
    Py_ssize_t reach; /* the largest anchor offset */
} LineNeedles;

/* How common a byte is in nova logs: the most common ones, most common first, as counted in
 * real nova-compute logs (spaces, hexadecimal identifiers, punctuation of Python reprs); any
 * other byte is rare. Anchors are the two least common bytes of a needle. */
static int
commonness(unsigned char byte)
{
    static const char common[] = " ea0c21\"di-rtns84o5_bf63:l9p7./v,umgy'hkq=[]";
    const char *found = memchr(common, byte, sizeof(common) - 1);
    return found == NULL ? -1 : (int)(sizeof(common) - (size_t)(found - common));
}

static Py_ssize_t
least_common(const Needle *needle, Py_ssize_t besides)
{
    Py_ssize_t chosen = -1;
    for (Py_ssize_t i = 0; i < needle->size; i++) {
        if (i != besides
            && (chosen < 0 || commonness(needle->bytes[i]) < commonness(needle->bytes[chosen])))
            chosen = i;
    }
    return chosen;
}

static void
choose_anchors(Needle *needle)
{
    needle->first = least_common(needle, -1);
    needle->second = needle->size > 1 ? least_common(needle, needle->first) : needle->first;
}

static void
LineNeedles_dealloc(LineNeedles *self)
{
    PyMem_Free(self->needles);
    Py_XDECREF(self->kept);
    PyTypeObject *type = Py_TYPE(self);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyObject *
LineNeedles_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"groups", NULL};
    PyObject *groups;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!", keywords, &PyTuple_Type, &groups))
        return NULL;
    LineNeedles *self = (LineNeedles *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->groups = PyTuple_GET_SIZE(groups);
    self->kept = PyList_New(0);
    if (self->kept == NULL)
        goto fail;
    for (Py_ssize_t g = 0; g < self->groups; g++) {
        PyObject *group = PyTuple_GET_ITEM(groups, g);
        if (!PyTuple_Check(group)) {
            PyErr_SetString(PyExc_TypeError, "each group is a tuple of bytes");
            goto fail;
        }
        for (Py_ssize_t n = 0; n < PyTuple_GET_SIZE(group); n++) {
            PyObject *needle = PyTuple_GET_ITEM(group, n);
            if (!PyBytes_Check(needle) || PyBytes_GET_SIZE(needle) == 0
                || memchr(PyBytes_AS_STRING(needle), '\n', PyBytes_GET_SIZE(needle)) != NULL) {
                PyErr_SetString(PyExc_ValueError,
                                "a needle is a non-empty bytes object without a line end");
                goto fail;
            }
            if (PyList_Append(self->kept, needle) < 0)
                goto fail;
        }
    }
    self->count = PyList_GET_SIZE(self->kept);
    if (self->count > MAX_NEEDLES) {
        PyErr_Format(PyExc_ValueError, "at most %d needles", MAX_NEEDLES);
        goto fail;
    }
    self->needles = PyMem_Calloc(self->count ? self->count : 1, sizeof(Needle));
    if (self->needles == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    Py_ssize_t index = 0;
    for (Py_ssize_t g = 0; g < self->groups; g++) {
        PyObject *group = PyTuple_GET_ITEM(groups, g);
        for (Py_ssize_t n = 0; n < PyTuple_GET_SIZE(group); n++, index++) {
            Needle *needle = &self->needles[index];
            PyObject *bytes = PyList_GET_ITEM(self->kept, index);
            needle->bytes = (const unsigned char *)PyBytes_AS_STRING(bytes);
            needle->size = PyBytes_GET_SIZE(bytes);
            needle->group = g;
            choose_anchors(needle);
            Py_ssize_t reach = needle->first > needle->second ? needle->first : needle->second;
            if (reach > self->reach)
                self->reach = reach;
        }
    }
    return (PyObject *)self;
fail:
    Py_DECREF(self);
    return NULL;
}

/* What a search does with each line found: `found` is called once per needle occurrence, in
 * order of position, with the number of line ends before it; it returns 1 to stop, 0 to go
 * on, -1 on an error. */
typedef int (*on_found)(void *state, Py_ssize_t group, Py_ssize_t position, Py_ssize_t line);

static int
confirmed(const Needle *needle, const unsigned char *buffer, Py_ssize_t position,
          Py_ssize_t limit)
{
    return position + needle->size <= limit
           && memcmp(buffer + position, needle->bytes, (size_t)needle->size) == 0;
}

/* The occurrences at `at`: each needle that starts there, in order. */
static int
report_at(const LineNeedles *self, const unsigned char *buffer, Py_ssize_t at, Py_ssize_t limit,
          Py_ssize_t line, on_found found, void *state)
{
    for (Py_ssize_t n = 0; n < self->count; n++) {
        const Needle *needle = &self->needles[n];
        if (buffer[at] == needle->bytes[0] && confirmed(needle, buffer, at, limit)) {
            int verdict = found(state, needle->group, at, line);
            if (verdict != 0)
                return verdict;
        }
    }
    return 0;
}

#ifdef VECTORS
static inline Py_ssize_t
sse2_total(__m128i counts)
{
    __m128i sums = _mm_sad_epu8(counts, _mm_setzero_si128());
    return (Py_ssize_t)(_mm_cvtsi128_si64(sums) + _mm_cvtsi128_si64(_mm_unpackhi_epi64(sums, sums)));
}

__attribute__((target("avx2"))) static inline Py_ssize_t
avx2_total(__m256i counts)
{
    __m256i sums = _mm256_sad_epu8(counts, _mm256_setzero_si256());
    __m128i halves =
        _mm_add_epi64(_mm256_castsi256_si128(sums), _mm256_extracti128_si256(sums, 1));
    return (Py_ssize_t)(_mm_cvtsi128_si64(halves)
                        + _mm_cvtsi128_si64(_mm_unpackhi_epi64(halves, halves)));
}

/* The scan of whole blocks, written once for each vector width: from the buffer's start while
 * a block and a needle's farthest anchor fit before `limit`. Line ends are summed per byte
 * lane (at most 255 blocks at a time) and totalled only when a needle may start in a block,
 * which is rare: the anchors of every needle are compared first, the needles themselves only
 * where their anchors match. Sets `*reached` to where it stopped; returns the line ends before
 * it, or the verdict that stopped it (-1 or -2, as `search`). */
#define DEFINE_BLOCKS(name, attributes, vector, width, load, broadcast, equal, both, either,   \
                      mask, minus, zero, total)                                               \
    static attributes Py_ssize_t name(const LineNeedles *self, const unsigned char *buffer,   \
                                      Py_ssize_t limit, on_found found, void *state,          \
                                      Py_ssize_t *reached)                                    \
    {                                                                                         \
        vector firsts[MAX_NEEDLES], seconds[MAX_NEEDLES];                                     \
        const Needle *needles = self->needles;                                                \
        const Py_ssize_t count = self->count;                                                 \
        for (Py_ssize_t n = 0; n < count; n++) {                                              \
            firsts[n] = broadcast((char)needles[n].bytes[needles[n].first]);                  \
            seconds[n] = broadcast((char)needles[n].bytes[needles[n].second]);                \
        }                                                                                     \
        const vector line_end = broadcast('\n');                                              \
        Py_ssize_t lines = 0;     /* line ends before the blocks summed in `pending` */       \
        vector pending = zero();  /* line ends per byte lane */                               \
        int pending_blocks = 0;                                                               \
        Py_ssize_t at = 0;                                                                    \
        for (; at + width + self->reach <= limit; at += width) {                              \
            const unsigned char *block = buffer + at;                                         \
            vector ends = equal(load(block), line_end);                                       \
            vector anchored = zero();                                                         \
            for (Py_ssize_t n = 0; n < count; n++)                                            \
                anchored = either(anchored,                                                   \
                                  both(equal(load(block + needles[n].first), firsts[n]),      \
                                       equal(load(block + needles[n].second), seconds[n])));  \
            unsigned int candidates = (unsigned int)mask(anchored);                           \
            if (candidates) {                                                                 \
                Py_ssize_t before = lines + total(pending);                                   \
                unsigned int end_bits = (unsigned int)mask(ends);                             \
                while (candidates) {                                                          \
                    int bit = __builtin_ctz(candidates);                                      \
                    candidates &= candidates - 1;                                             \
                    Py_ssize_t line =                                                         \
                        before + __builtin_popcount(end_bits & ((1u << bit) - 1u));           \
                    int verdict =                                                             \
                        report_at(self, buffer, at + bit, limit, line, found, state);         \
                    if (verdict != 0) {                                                       \
                        *reached = at;                                                        \
                        return verdict < 0 ? -1 : -2;                                         \
                    }                                                                         \
                }                                                                             \
            }                                                                                 \
            pending = minus(pending, ends);                                                   \
            if (++pending_blocks == 255) {                                                    \
                lines += total(pending);                                                      \
                pending = zero();                                                             \
                pending_blocks = 0;                                                           \
            }                                                                                 \
        }                                                                                     \
        *reached = at;                                                                        \
        return lines + total(pending);                                                        \
    }

#define SSE2_LOAD(at) _mm_loadu_si128((const __m128i *)(at))
DEFINE_BLOCKS(sse2_blocks, , __m128i, 16, SSE2_LOAD, _mm_set1_epi8, _mm_cmpeq_epi8,
              _mm_and_si128, _mm_or_si128, _mm_movemask_epi8, _mm_sub_epi8, _mm_setzero_si128,
              sse2_total)
#define AVX2_LOAD(at) _mm256_loadu_si256((const __m256i *)(at))
DEFINE_BLOCKS(avx2_blocks, __attribute__((target("avx2"))), __m256i, 32, AVX2_LOAD,
              _mm256_set1_epi8, _mm256_cmpeq_epi8, _mm256_and_si256, _mm256_or_si256,
              _mm256_movemask_epi8, _mm256_sub_epi8, _mm256_setzero_si256, avx2_total)

typedef Py_ssize_t (*blocks_scan)(const LineNeedles *, const unsigned char *, Py_ssize_t,
                                  on_found, void *, Py_ssize_t *);
static blocks_scan scan_blocks = NULL; /* NULL: the byte loop alone */
#endif

static const char *way_in_use = "bytes";

/* Scan whole blocks the way named: "avx2", "sse2" or "bytes" (the byte loop alone, as on
 * processors with neither); -1 if this processor cannot. */
static int
choose_way(const char *way)
{
    if (strcmp(way, "bytes") == 0) {
#ifdef VECTORS
        scan_blocks = NULL;
#endif
        way_in_use = "bytes";
        return 0;
    }
#ifdef VECTORS
    if (strcmp(way, "sse2") == 0) {
        scan_blocks = sse2_blocks;
        way_in_use = "sse2";
        return 0;
    }
    if (strcmp(way, "avx2") == 0 && __builtin_cpu_supports("avx2")) {
        scan_blocks = avx2_blocks;
        way_in_use = "avx2";
        return 0;
    }
#endif
    return -1;
}

/* Visit every needle occurrence in buffer[:limit], in order of position; returns the number of
 * line ends in it, or -1 (an error in `found`) / -2 (stopped by `found`). */
static Py_ssize_t
search(const LineNeedles *self, const unsigned char *buffer, Py_ssize_t limit, on_found found,
       void *state)
{
    Py_ssize_t at = 0;
    Py_ssize_t lines = 0;
#ifdef VECTORS
    if (scan_blocks != NULL) {
        lines = scan_blocks(self, buffer, limit, found, state, &at);
        if (lines < 0)
            return lines;
    }
#endif
    for (; at < limit; at++) {
        int verdict = report_at(self, buffer, at, limit, lines, found, state);
        if (verdict != 0)
            return verdict < 0 ? -1 : -2;
        lines += buffer[at] == '\n';
    }
    return lines;
}

typedef struct {
    const unsigned char *buffer;
    Py_ssize_t limit;
    PyObject **ends;    /* a list per group */
    PyObject **indices; /* a list per group */
    Py_ssize_t *last;   /* the last line named per group */
} Collected;

static int
append_number(PyObject *list, Py_ssize_t number)
{
    PyObject *value = PyLong_FromSsize_t(number);
    if (value == NULL)
        return -1;
    int result = PyList_Append(list, value);
    Py_DECREF(value);
    return result;
}

static int
collect_line(void *state, Py_ssize_t group, Py_ssize_t position, Py_ssize_t line)
{
    Collected *collected = state;
    if (collected->last[group] == line)
        return 0;
    collected->last[group] = line;
    const unsigned char *end = memchr(collected->buffer + position, '\n',
                                      (size_t)(collected->limit - position));
    Py_ssize_t after = end == NULL ? collected->limit : end - collected->buffer + 1;
    if (append_number(collected->ends[group], after) < 0
        || append_number(collected->indices[group], line) < 0)
        return -1;
    return 0;
}

static int
stop_at_first(void *state, Py_ssize_t group, Py_ssize_t position, Py_ssize_t line)
{
    (void)state, (void)group, (void)position, (void)line;
    return 1;
}

static int
buffer_and_limit(PyObject *args, Py_buffer *view, Py_ssize_t *limit)
{
    *limit = PY_SSIZE_T_MIN; /* not given: the whole buffer */
    if (!PyArg_ParseTuple(args, "y*|n", view, limit))
        return -1;
    if (*limit == PY_SSIZE_T_MIN)
        *limit = view->len;
    if (*limit < 0 || *limit > view->len) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "limit is beyond the buffer's ends");
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(scan_doc,
"scan(buffer, limit=len(buffer)) -> (line_ends, [(ends, lines) per group])\n\n"
"The number of line ends in buffer[:limit], and for each group the lines holding one of its\n"
"needles, in order, each once: where the line ends (just past its line end, or at limit) and\n"
"its number (the line ends before it).");

static PyObject *
LineNeedles_scan(LineNeedles *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t limit;
    if (buffer_and_limit(args, &view, &limit) < 0)
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t groups = self->groups;
    PyObject **lists = PyMem_Calloc(2 * (size_t)(groups ? groups : 1), sizeof(PyObject *));
    Py_ssize_t *last = PyMem_Malloc((size_t)(groups ? groups : 1) * sizeof(Py_ssize_t));
    if (lists == NULL || last == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t g = 0; g < 2 * groups; g++) {
        if ((lists[g] = PyList_New(0)) == NULL)
            goto done;
    }
    for (Py_ssize_t g = 0; g < groups; g++)
        last[g] = -1;
    Collected collected = {view.buf, limit, lists, lists + groups, last};
    Py_ssize_t lines = search(self, view.buf, limit, collect_line, &collected);
    if (lines < 0)
        goto done;
    PyObject *per_group = PyTuple_New(groups);
    if (per_group == NULL)
        goto done;
    for (Py_ssize_t g = 0; g < groups; g++) {
        PyObject *pair = PyTuple_Pack(2, lists[g], lists[groups + g]);
        if (pair == NULL) {
            Py_DECREF(per_group);
            goto done;
        }
        PyTuple_SET_ITEM(per_group, g, pair);
    }
    result = Py_BuildValue("(nN)", lines, per_group);
done:
    if (lists != NULL) {
        for (Py_ssize_t g = 0; g < 2 * groups; g++)
            Py_XDECREF(lists[g]);
    }
    PyMem_Free(lists);
    PyMem_Free(last);
    PyBuffer_Release(&view);
    return result;
}

PyDoc_STRVAR(occurs_in_doc,
"occurs_in(buffer, limit=len(buffer)) -> bool\n\n"
"Whether any needle of any group occurs in buffer[:limit].");

static PyObject *
LineNeedles_occurs_in(LineNeedles *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t limit;
    if (buffer_and_limit(args, &view, &limit) < 0)
        return NULL;
    Py_ssize_t outcome = search(self, view.buf, limit, stop_at_first, NULL);
    PyBuffer_Release(&view);
    return PyBool_FromLong(outcome == -2);
}

static PyMethodDef LineNeedles_methods[] = {
    {"scan", (PyCFunction)LineNeedles_scan, METH_VARARGS, scan_doc},
    {"occurs_in", (PyCFunction)LineNeedles_occurs_in, METH_VARARGS, occurs_in_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(LineNeedles_doc,
"LineNeedles(groups)\n\n"
"Groups of needles (a tuple of tuples of non-empty bytes without line ends) to look for.");

static PyType_Slot LineNeedles_slots[] = {
    {Py_tp_new, LineNeedles_new},
    {Py_tp_dealloc, LineNeedles_dealloc},
    {Py_tp_methods, LineNeedles_methods},
    {Py_tp_doc, (void *)LineNeedles_doc},
    {0, NULL},
};

static PyType_Spec LineNeedles_spec = {
    .name = "logs_parsers._linescan.LineNeedles",
    .basicsize = sizeof(LineNeedles),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = LineNeedles_slots,
};

static int
linescan_exec(PyObject *module)
{
#ifdef VECTORS
    __builtin_cpu_init();
#endif
    if (choose_way("avx2") < 0 && choose_way("sse2") < 0)
        choose_way("bytes");
    PyObject *type = PyType_FromModuleAndSpec(module, &LineNeedles_spec, NULL);
    if (type == NULL)
        return -1;
    int result = PyModule_AddObjectRef(module, "LineNeedles", type);
    Py_DECREF(type);
    return result;
}

PyDoc_STRVAR(use_doc,
"use(way=None) -> str\n\n"
"The way whole blocks are scanned: 'avx2', 'sse2' or 'bytes' (the byte loop alone, as on\n"
"processors with neither). Every way gives the same answers; the fastest this processor has\n"
"is chosen on import. Sets the way when given (ValueError if this processor cannot) and\n"
"returns the one used before: tests check each way.");

static PyObject *
linescan_use(PyObject *module, PyObject *args)
{
    (void)module;
    const char *way = NULL;
    if (!PyArg_ParseTuple(args, "|z", &way))
        return NULL;
    const char *before = way_in_use;
    if (way != NULL && choose_way(way) < 0) {
        PyErr_Format(PyExc_ValueError, "this processor cannot scan by %s", way);
        return NULL;
    }
    return PyUnicode_FromString(before);
}

static PyMethodDef linescan_methods[] = {
    {"use", linescan_use, METH_VARARGS, use_doc},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot linescan_slots[] = {
    {Py_mod_exec, linescan_exec},
    {0, NULL},
};

static struct PyModuleDef linescan_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "logs_parsers._linescan",
    .m_doc = "Finding the lines that hold a needle, and counting lines, in one pass.",
    .m_size = 0,
    .m_methods = linescan_methods,
    .m_slots = linescan_slots,
};

PyMODINIT_FUNC
PyInit__linescan(void)
{
    return PyModuleDef_Init(&linescan_module);
}
