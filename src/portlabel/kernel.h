/* What every compiled kernel of portlabel shares: the module definition and the release
 * of the buffers a call borrowed. Each kernel is one C file beside the Python module it
 * speeds up; portlabel/kernels.py lists them and setup.py builds them. */
#ifndef PORTLABEL_KERNEL_H
#define PORTLABEL_KERNEL_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* The module object of a kernel: PORTLABEL_MODULE(_name, "doc", methods) */
#define PORTLABEL_MODULE(NAME, DOC, METHODS)                                                 \
    static struct PyModuleDef NAME##_module = {                                              \
        .m_base = PyModuleDef_HEAD_INIT,                                                     \
        .m_name = #NAME,                                                                     \
        .m_doc = DOC,                                                                        \
        .m_size = -1,                                                                        \
        .m_methods = METHODS,                                                                \
    };                                                                                       \
    PyMODINIT_FUNC PyInit_##NAME(void) { return PyModule_Create(&NAME##_module); }

/* Give back the first ``count`` buffers of ``views``. */
static inline void release_buffers(Py_buffer *views, int count)
{
    for (int i = 0; i < count; i++)
        PyBuffer_Release(&views[i]);
}

/* None when a kernel's loop succeeded (status 0), else a ValueError with ``message``. */
static inline PyObject *none_or_error(int status, const char *message)
{
    if (status < 0) {
        PyErr_SetString(PyExc_ValueError, message);
        return NULL;
    }
    return Py_NewRef(Py_None);
}

#endif
