/*
 * JNI bridge of dev.rbeedge.NativeBridge. Every entry point checks its Java
 * arguments before it touches memory: null, heap instead of direct buffers,
 * read-only output buffers, capacities, alignment and ranges. Failures
 * become Java exceptions. C core errors become dev.rbeedge.RbeException
 * with the core's message, bad arguments IllegalArgumentException, and a
 * closed bundle IllegalStateException.
 */
#include <jni.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rbe_bridge.h"

#define JNI_NAME(name) Java_dev_rbeedge_NativeBridge_##name

/* An opened container. The global reference keeps its buffer alive. */
typedef struct bridge_handle {
    rbe_container container;
    jobject buffer;
} bridge_handle;

/* ---- exceptions ---- */

static void throw_class(JNIEnv *env, const char *class_name, const char *message)
{
    jclass cls = (*env)->FindClass(env, class_name);
    if (cls != NULL) {
        (*env)->ThrowNew(env, cls, message);
    }
}

static void throw_argument(JNIEnv *env, const char *message)
{
    throw_class(env, "java/lang/IllegalArgumentException", message);
}

/* Throws RbeException(status, "<operation>: <message>") for a failed call. */
static void throw_status(JNIEnv *env, int status, const char *operation)
{
    if (status == RBE_BRIDGE_ERR_MEMORY) {
        throw_class(env, "java/lang/OutOfMemoryError", rbe_bridge_message(status));
        return;
    }
    char text[512];
    snprintf(text, sizeof(text), "%s: %s", operation, rbe_bridge_message(status));

    jclass cls = (*env)->FindClass(env, "dev/rbeedge/RbeException");
    if (cls == NULL) {
        return;
    }
    jmethodID init = (*env)->GetMethodID(env, cls, "<init>", "(ILjava/lang/String;)V");
    jstring message = (*env)->NewStringUTF(env, text);
    if (init == NULL || message == NULL) {
        return;
    }
    jobject error = (*env)->NewObject(env, cls, init, (jint)status, message);
    if (error != NULL) {
        (*env)->Throw(env, (jthrowable)error);
    }
}

/* ---- argument checks, each returning NULL or 0 after throwing ---- */

static bridge_handle *handle_of(JNIEnv *env, jlong handle)
{
    if (handle == 0) {
        throw_class(env, "java/lang/IllegalStateException", "the bundle is closed");
        return NULL;
    }
    return (bridge_handle *)(intptr_t)handle;
}

/*
 * Returns the address of a direct buffer holding at least `bytes` bytes at
 * an address aligned to `alignment`, or NULL after throwing.
 */
static void *buffer_of(JNIEnv *env, jobject buffer, const char *name, uint64_t bytes,
                       uintptr_t alignment)
{
    char text[256];
    if (buffer == NULL) {
        snprintf(text, sizeof(text), "%s is null", name);
        throw_class(env, "java/lang/NullPointerException", text);
        return NULL;
    }
    void *address = (*env)->GetDirectBufferAddress(env, buffer);
    jlong capacity = (*env)->GetDirectBufferCapacity(env, buffer);
    if (address == NULL || capacity < 0) {
        snprintf(text, sizeof(text), "%s must be a direct ByteBuffer (ByteBuffer.allocateDirect)",
                 name);
        throw_argument(env, text);
        return NULL;
    }
    if ((uint64_t)capacity < bytes) {
        snprintf(text, sizeof(text), "%s has %lld bytes; %llu are needed", name,
                 (long long)capacity, (unsigned long long)bytes);
        throw_argument(env, text);
        return NULL;
    }
    if ((uintptr_t)address % alignment != 0) {
        snprintf(text, sizeof(text), "%s must start at an address aligned to %u bytes", name,
                 (unsigned)alignment);
        throw_argument(env, text);
        return NULL;
    }
    return address;
}

/*
 * Like buffer_of, for a buffer the call writes to: a read-only buffer (for
 * example a read-only file mapping) is rejected, because writing to it
 * could crash the process.
 */
static void *writable_buffer_of(JNIEnv *env, jobject buffer, const char *name, uint64_t bytes,
                                uintptr_t alignment)
{
    void *address = buffer_of(env, buffer, name, bytes, alignment);
    if (address == NULL) {
        return NULL;
    }
    jclass cls = (*env)->GetObjectClass(env, buffer);
    jmethodID is_read_only = (*env)->GetMethodID(env, cls, "isReadOnly", "()Z");
    if (is_read_only == NULL) {
        return NULL;
    }
    jboolean read_only = (*env)->CallBooleanMethod(env, buffer, is_read_only);
    if ((*env)->ExceptionCheck(env)) {
        return NULL;
    }
    if (read_only) {
        char text[160];
        snprintf(text, sizeof(text), "%s is read-only; pass a writable direct ByteBuffer", name);
        throw_argument(env, text);
        return NULL;
    }
    return address;
}

/* Fills *tensor for index, or throws and returns 0. */
static int tensor_of(JNIEnv *env, bridge_handle *h, jint index, rbe_bridge_tensor *tensor)
{
    if (index < 0 || (uint32_t)index >= h->container.tensor_count) {
        char text[128];
        snprintf(text, sizeof(text), "tensor index %d is out of range 0..%u", (int)index,
                 (unsigned)h->container.tensor_count);
        throw_argument(env, text);
        return 0;
    }
    int status = rbe_bridge_tensor_get(&h->container, (uint32_t)index, tensor);
    if (status != RBE_OK) {
        throw_status(env, status, "reading the tensor table");
        return 0;
    }
    return 1;
}

/*
 * Points planes[0..count-1] at the container's planes (copy == NULL) or at
 * a writable copy of all B planes. Returns 0 after throwing.
 */
static int planes_of(JNIEnv *env, const rbe_bridge_tensor *t, jobject copy, jint count,
                     int writable, const uint8_t **planes)
{
    uint32_t limit = copy == NULL ? t->planes_present : t->info.bits;
    if (count < 1 || (uint32_t)count > limit) {
        char text[160];
        snprintf(text, sizeof(text), "planes=%d is out of range: this tensor has 1..%u planes here",
                 (int)count, (unsigned)limit);
        throw_argument(env, text);
        return 0;
    }
    if (copy == NULL) {
        memcpy(planes, t->planes, sizeof(t->planes[0]) * (size_t)count);
        return 1;
    }
    uint64_t bytes = (uint64_t)t->info.bits * t->info.plane_bytes;
    uint8_t *base = writable ? writable_buffer_of(env, copy, "the plane buffer", bytes, 1)
                             : buffer_of(env, copy, "the plane buffer", bytes, 1);
    if (base == NULL) {
        return 0;
    }
    for (jint p = 0; p < count; p++) {
        planes[p] = base + (size_t)p * (size_t)t->info.plane_bytes;
    }
    return 1;
}

static uint64_t float_bytes(const rbe_bridge_tensor *t)
{
    return (uint64_t)t->layout.rows * t->layout.cols * sizeof(float);
}

/* ---- container ---- */

JNIEXPORT jlong JNICALL JNI_NAME(open)(JNIEnv *env, jclass cls, jobject buffer, jlong size)
{
    (void)cls;
    if (size < 0) {
        throw_argument(env, "the container size is negative");
        return 0;
    }
    /* Mapping an empty file gives a buffer without an address; the reader
     * still gets a valid pointer so that it reports the truncation. */
    static const uint8_t empty[1];
    const uint8_t *data = empty;
    if (buffer == NULL || size > 0 || (*env)->GetDirectBufferCapacity(env, buffer) != 0) {
        data = buffer_of(env, buffer, "the container buffer", (uint64_t)size, 1);
        if (data == NULL) {
            return 0;
        }
    }

    bridge_handle *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        throw_class(env, "java/lang/OutOfMemoryError", "no memory for the bundle handle");
        return 0;
    }
    int status = rbe_container_open(&h->container, data, (size_t)size);
    if (status != RBE_OK) {
        free(h);
        throw_status(env, status, "opening model.rbe");
        return 0;
    }
    h->buffer = (*env)->NewGlobalRef(env, buffer);
    if (h->buffer == NULL) {
        free(h);
        return 0;
    }
    return (jlong)(intptr_t)h;
}

JNIEXPORT void JNICALL JNI_NAME(close)(JNIEnv *env, jclass cls, jlong handle)
{
    (void)cls;
    if (handle == 0) {
        return;
    }
    bridge_handle *h = (bridge_handle *)(intptr_t)handle;
    (*env)->DeleteGlobalRef(env, h->buffer);
    free(h);
}

JNIEXPORT jlongArray JNICALL JNI_NAME(containerInfo)(JNIEnv *env, jclass cls, jlong handle)
{
    (void)cls;
    bridge_handle *h = handle_of(env, handle);
    if (h == NULL) {
        return NULL;
    }
    const rbe_container *c = &h->container;
    jlong values[6] = {c->version, c->tensor_count, c->max_bits, c->planes_available,
                       (jlong)c->file_size, (jlong)c->data_offset};
    jlongArray result = (*env)->NewLongArray(env, 6);
    if (result != NULL) {
        (*env)->SetLongArrayRegion(env, result, 0, 6, values);
    }
    return result;
}

JNIEXPORT jbyteArray JNICALL JNI_NAME(tensorName)(JNIEnv *env, jclass cls, jlong handle,
                                                   jint index)
{
    (void)cls;
    bridge_handle *h = handle_of(env, handle);
    rbe_bridge_tensor t;
    if (h == NULL || !tensor_of(env, h, index, &t)) {
        return NULL;
    }
    jbyteArray name = (*env)->NewByteArray(env, (jsize)t.info.name_len);
    if (name != NULL) {
        (*env)->SetByteArrayRegion(env, name, 0, (jsize)t.info.name_len,
                                   (const jbyte *)t.info.name);
    }
    return name;
}

/* Returns ndim, layout, shape[4], bits, rows, cols, group_size, plane_bytes,
 * planes_present, plane_offset[16]. */
JNIEXPORT jlongArray JNICALL JNI_NAME(tensorInfo)(JNIEnv *env, jclass cls, jlong handle,
                                                   jint index)
{
    (void)cls;
    bridge_handle *h = handle_of(env, handle);
    rbe_bridge_tensor t;
    if (h == NULL || !tensor_of(env, h, index, &t)) {
        return NULL;
    }
    jlong values[28] = {t.info.ndim, t.info.layout,
                        (jlong)t.info.shape[0], (jlong)t.info.shape[1],
                        (jlong)t.info.shape[2], (jlong)t.info.shape[3],
                        t.info.bits, (jlong)t.info.rows, (jlong)t.info.cols,
                        (jlong)t.info.group_size, (jlong)t.info.plane_bytes, t.planes_present};
    for (int p = 0; p < 16; p++) {
        values[12 + p] = (jlong)t.info.plane_offset[p];
    }
    jlongArray result = (*env)->NewLongArray(env, 28);
    if (result != NULL) {
        (*env)->SetLongArrayRegion(env, result, 0, 28, values);
    }
    return result;
}

JNIEXPORT void JNICALL JNI_NAME(verify)(JNIEnv *env, jclass cls, jlong handle, jint planes)
{
    (void)cls;
    bridge_handle *h = handle_of(env, handle);
    if (h == NULL) {
        return;
    }
    if (planes < 1 || (uint32_t)planes > h->container.planes_available) {
        throw_argument(env, "planes is out of range 1..planes available");
        return;
    }
    int status = rbe_container_verify(&h->container, (uint32_t)planes);
    if (status != RBE_OK) {
        throw_status(env, status, "verifying model.rbe");
    }
}

/* ---- tensors ---- */

JNIEXPORT void JNICALL JNI_NAME(decode)(JNIEnv *env, jclass cls, jlong handle, jint index,
                                         jobject plane_copy, jint planes_used, jobject out)
{
    (void)cls;
    bridge_handle *h = handle_of(env, handle);
    rbe_bridge_tensor t;
    const uint8_t *planes[16];
    if (h == NULL || !tensor_of(env, h, index, &t) ||
        !planes_of(env, &t, plane_copy, planes_used, 0, planes)) {
        return;
    }
    float *values = writable_buffer_of(env, out, "the output buffer", float_bytes(&t),
                                       sizeof(float));
    if (values == NULL) {
        return;
    }
    int status = rbe_bridge_decode(&t, planes, (unsigned)planes_used, values);
    if (status != RBE_OK) {
        throw_status(env, status, "decoding the tensor");
    }
}

JNIEXPORT void JNICALL JNI_NAME(refine)(JNIEnv *env, jclass cls, jlong handle, jint index,
                                         jobject plane_copy, jint planes_used, jobject inout)
{
    (void)cls;
    bridge_handle *h = handle_of(env, handle);
    rbe_bridge_tensor t;
    const uint8_t *planes[16];
    /* Refining from planes_used reads plane index planes_used. */
    if (h == NULL || !tensor_of(env, h, index, &t) ||
        !planes_of(env, &t, plane_copy, planes_used + 1, 0, planes)) {
        return;
    }
    float *values = writable_buffer_of(env, inout, "the decoded buffer", float_bytes(&t),
                                       sizeof(float));
    if (values == NULL) {
        return;
    }
    int status = rbe_bridge_refine(&t, planes[planes_used], (unsigned)planes_used, values);
    if (status != RBE_OK) {
        throw_status(env, status, "refining the tensor");
    }
}

JNIEXPORT void JNICALL JNI_NAME(update)(JNIEnv *env, jclass cls, jlong handle, jint index,
                                         jobject plane_copy, jobject grad, jobject accum,
                                         jint upper_planes, jint mode, jfloat learning_rate,
                                         jlong seed, jlong step)
{
    (void)cls;
    bridge_handle *h = handle_of(env, handle);
    rbe_bridge_tensor t;
    const uint8_t *planes[16];
    if (h == NULL || !tensor_of(env, h, index, &t)) {
        return;
    }
    if (plane_copy == NULL) {
        throw_argument(env, "an update needs the writable plane buffer");
        return;
    }
    if (!planes_of(env, &t, plane_copy, (jint)t.info.bits, 1, planes)) {
        return;
    }
    const float *gradient = buffer_of(env, grad, "the gradient buffer", float_bytes(&t),
                                      sizeof(float));
    if (gradient == NULL) {
        return;
    }
    int8_t *state = NULL;
    if (accum != NULL) {
        state = writable_buffer_of(env, accum, "the accumulator", float_bytes(&t) / sizeof(float),
                                   1);
        if (state == NULL) {
            return;
        }
    }

    rbe_update_params params;
    params.upper_planes = upper_planes < 0 ? 0u : (unsigned)upper_planes;
    params.mode = (rbe_update_mode)mode;
    params.learning_rate = learning_rate;
    params.seed = (uint64_t)seed;
    params.step = (uint64_t)step;
    int status = rbe_bridge_update(&t, (uint8_t *const *)planes, gradient, state, &params);
    if (status != RBE_OK) {
        throw_status(env, status, "updating the upper planes");
    }
}

JNIEXPORT void JNICALL JNI_NAME(foldLsb)(JNIEnv *env, jclass cls, jlong handle, jint index,
                                          jobject plane_copy, jobject accum, jint upper_planes)
{
    (void)cls;
    bridge_handle *h = handle_of(env, handle);
    rbe_bridge_tensor t;
    const uint8_t *planes[16];
    if (h == NULL || !tensor_of(env, h, index, &t)) {
        return;
    }
    if (plane_copy == NULL) {
        throw_argument(env, "folding LSBs needs the writable plane buffer");
        return;
    }
    if (!planes_of(env, &t, plane_copy, (jint)t.info.bits, 1, planes)) {
        return;
    }
    int8_t *state = writable_buffer_of(env, accum, "the accumulator",
                                       float_bytes(&t) / sizeof(float), 1);
    if (state == NULL) {
        return;
    }
    unsigned upper = upper_planes < 0 ? 0u : (unsigned)upper_planes;
    int status = rbe_fold_lsb(&t.layout, (uint8_t *const *)planes, state, upper);
    if (status != RBE_OK) {
        throw_status(env, status, "re-estimating the LSBs");
    }
}

/* ---- saving ---- */

JNIEXPORT jint JNICALL JNI_NAME(crc32c)(JNIEnv *env, jclass cls, jobject buffer, jlong offset,
                                         jlong length)
{
    (void)cls;
    if (offset < 0 || length < 0) {
        throw_argument(env, "the CRC32C range is negative");
        return 0;
    }
    const uint8_t *data = buffer_of(env, buffer, "the CRC32C buffer",
                                    (uint64_t)offset + (uint64_t)length, 1);
    if (data == NULL) {
        return 0;
    }
    uint32_t crc = 0;
    rbe_crc32c(data + offset, (size_t)length, &crc);
    return (jint)crc;
}

JNIEXPORT void JNICALL JNI_NAME(setPlaneCrc)(JNIEnv *env, jclass cls, jobject head, jint index,
                                              jint plane, jint crc)
{
    (void)cls;
    uint8_t *bytes = writable_buffer_of(env, head, "the header buffer", 0, 1);
    if (bytes == NULL) {
        return;
    }
    if (index < 0 || plane < 0) {
        throw_argument(env, "the tensor index and plane must not be negative");
        return;
    }
    size_t size = (size_t)(*env)->GetDirectBufferCapacity(env, head);
    int status = rbe_bridge_set_plane_crc(bytes, size, (uint32_t)index, (uint32_t)plane,
                                          (uint32_t)crc);
    if (status != RBE_OK) {
        throw_status(env, status, "patching the tensor table");
    }
}

JNIEXPORT void JNICALL JNI_NAME(sealHead)(JNIEnv *env, jclass cls, jobject head)
{
    (void)cls;
    uint8_t *bytes = writable_buffer_of(env, head, "the header buffer", 0, 1);
    if (bytes == NULL) {
        return;
    }
    size_t size = (size_t)(*env)->GetDirectBufferCapacity(env, head);
    int status = rbe_bridge_seal_head(bytes, size);
    if (status != RBE_OK) {
        throw_status(env, status, "sealing the header");
    }
}
