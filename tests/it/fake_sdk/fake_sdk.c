/*
 * A stand-in for libWeWorkFinanceSdk_C.so, built by the tests with `cc -shared -fPIC`.
 *
 * It exports the C API of WeWorkFinanceSdk_C.h that the SDK source loads. GetChatData answers
 * from files the test wrote into the directory named by FAKE_SDK_DIR:
 *   after-<seq>.body   the body of the call with that cursor (written as is: any bytes)
 *   (no such file)     an empty page: {"errcode":0,"errmsg":"ok","chatdata":[]}
 * Every call appends its cursor to FAKE_SDK_DIR/calls, so the test can count them. After
 * FAKE_SDK_MAX_CALLS calls (default 50) it answers 10000 (a parameter error, never retried), so
 * that a pull which would otherwise ask forever still ends and the test can report it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Slice_t {
    char *buf;
    int len;
} Slice_t;

typedef struct MediaData {
    char *outindexbuf;
    int out_len;
    char *data;
    int data_len;
    int is_finish;
} MediaData_t;

static int sdk_handle;

void *NewSdk(void) { return &sdk_handle; }

int Init(void *sdk, const char *corpid, const char *secret) {
    if (sdk == NULL || corpid == NULL || secret == NULL || secret[0] == '\0') {
        return 10000;
    }
    return 0;
}

void DestroySdk(void *sdk) { (void)sdk; }

Slice_t *NewSlice(void) { return calloc(1, sizeof(Slice_t)); }

void FreeSlice(Slice_t *slice) {
    if (slice != NULL) {
        free(slice->buf);
        free(slice);
    }
}

char *GetContentFromSlice(Slice_t *slice) { return slice->buf; }

int GetSliceLen(Slice_t *slice) { return slice->len; }

MediaData_t *NewMediaData(void) { return calloc(1, sizeof(MediaData_t)); }

void FreeMediaData(MediaData_t *media) {
    if (media != NULL) {
        free(media->outindexbuf);
        free(media->data);
        free(media);
    }
}

int GetMediaData(void *sdk, const char *indexbuf, const char *sdkfileid, const char *proxy,
                 const char *passwd, int timeout, MediaData_t *media) {
    (void)sdk; (void)indexbuf; (void)sdkfileid; (void)proxy; (void)passwd; (void)timeout;
    (void)media;
    return 10005;
}

int DecryptData(const char *encrypt_key, const char *encrypt_msg, Slice_t *msg) {
    (void)encrypt_key; (void)encrypt_msg; (void)msg;
    return 10006;
}

/* Appends the cursor to <dir>/calls and returns how many calls it now holds (-1 on error). */
static long record_call(const char *dir, unsigned long long seq) {
    char path[4096];
    snprintf(path, sizeof path, "%s/calls", dir);
    FILE *f = fopen(path, "a+");
    if (f == NULL) {
        return -1;
    }
    fprintf(f, "%llu\n", seq);
    fflush(f);
    rewind(f);
    long lines = 0;
    int c;
    while ((c = fgetc(f)) != EOF) {
        if (c == '\n') {
            lines++;
        }
    }
    fclose(f);
    return lines;
}

static int set_slice(Slice_t *slice, const char *data, long len) {
    char *buf = malloc((size_t)len + 1);
    if (buf == NULL) {
        return 10003;
    }
    memcpy(buf, data, (size_t)len);
    buf[len] = '\0';
    free(slice->buf);
    slice->buf = buf;
    slice->len = (int)len;
    return 0;
}

int GetChatData(void *sdk, unsigned long long seq, unsigned int limit, const char *proxy,
                const char *passwd, int timeout, Slice_t *slice) {
    (void)sdk; (void)limit; (void)proxy; (void)passwd; (void)timeout;
    const char *dir = getenv("FAKE_SDK_DIR");
    if (dir == NULL || slice == NULL) {
        return 10000;
    }
    long calls = record_call(dir, seq);
    if (calls < 0) {
        return 10003;
    }
    const char *max = getenv("FAKE_SDK_MAX_CALLS");
    if (calls > (max != NULL ? atol(max) : 50)) {
        return 10000;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/after-%llu.body", dir, seq);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        static const char empty[] = "{\"errcode\":0,\"errmsg\":\"ok\",\"chatdata\":[]}";
        return set_slice(slice, empty, (long)strlen(empty));
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *body = malloc((size_t)len + 1);
    if (body == NULL || fread(body, 1, (size_t)len, f) != (size_t)len) {
        free(body);
        fclose(f);
        return 10003;
    }
    fclose(f);
    int rc = set_slice(slice, body, len);
    free(body);
    return rc;
}
