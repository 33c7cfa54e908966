/* posezoo: decode one rectangle of a baseline or progressive JPEG with libjpeg-turbo's
 * jpeg_crop_scanline / jpeg_skip_scanlines (DATASET.DECODE region; utils/jpeg_region.py).
 *
 * The decoder is set up as OpenCV's imread sets it for IMREAD_COLOR (three-channel BGR or RGB
 * output, every other parameter at libjpeg's default: ISLOW IDCT, fancy upsampling), so the
 * pixels are the whole-image decode's. Columns are decoded one iMCU wider on each side than
 * asked and the extra columns dropped: at the edge of a horizontal crop libjpeg-turbo's fancy
 * upsampler of 2x-subsampled chroma sees no neighbour and would differ from the whole decode in
 * the last column. Any libjpeg warning (corrupt data) makes the call fail, so that the caller
 * falls back to the whole-image reader, whose handling of damaged files stays the only one. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

struct posezoo_error {
  struct jpeg_error_mgr pub;
  jmp_buf jump;
};

static void posezoo_error_exit(j_common_ptr cinfo) {
  longjmp(((struct posezoo_error *)cinfo->err)->jump, 1);
}

static void posezoo_emit_message(j_common_ptr cinfo, int level) {
  if (level < 0) cinfo->err->num_warnings++;
}

static void posezoo_setup(struct jpeg_decompress_struct *cinfo, struct posezoo_error *err) {
  cinfo->err = jpeg_std_error(&err->pub);
  err->pub.error_exit = posezoo_error_exit;
  err->pub.emit_message = posezoo_emit_message;
}

/* The header: info = {width, height, components, libjpeg's J_COLOR_SPACE}. 0, or -1 when
 * libjpeg cannot read it. */
int posezoo_jpeg_header(const unsigned char *data, unsigned long size, int *info) {
  struct jpeg_decompress_struct cinfo;
  struct posezoo_error err;
  posezoo_setup(&cinfo, &err);
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return -1;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, size);
  jpeg_read_header(&cinfo, TRUE);
  info[0] = (int)cinfo.image_width;
  info[1] = (int)cinfo.image_height;
  info[2] = cinfo.num_components;
  info[3] = (int)cinfo.jpeg_color_space;
  jpeg_destroy_decompress(&cinfo);
  return 0;
}

/* Rows [y0, y1) and columns [x0, x1) of the image, three bytes a pixel (RGB when rgb, else BGR),
 * written to out with `stride` bytes from one row to the next. 0 on success; -1 a libjpeg error,
 * -2 a colour layout left to the whole-image reader, -3 a libjpeg warning, -4 a bad rectangle or
 * no memory. */
int posezoo_jpeg_region(const unsigned char *data, unsigned long size, int x0, int y0, int x1, int y1,
                        int rgb, unsigned char *out, long stride) {
  struct jpeg_decompress_struct cinfo;
  struct posezoo_error err;
  JSAMPROW row = NULL;
  JSAMPROW volatile owned = NULL; /* what a longjmp from libjpeg must free */
  posezoo_setup(&cinfo, &err);
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    free(owned);
    return -1;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, size);
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.num_components != 1 && cinfo.num_components != 3) {
    jpeg_destroy_decompress(&cinfo);
    return -2;
  }
  cinfo.out_color_space = rgb ? JCS_EXT_RGB : JCS_EXT_BGR;
  cinfo.out_color_components = 3;
  jpeg_start_decompress(&cinfo);
  int width = (int)cinfo.output_width, height = (int)cinfo.output_height;
  if (x0 < 0 || y0 < 0 || x1 > width || y1 > height || x0 >= x1 || y0 >= y1) {
    jpeg_destroy_decompress(&cinfo);
    return -4;
  }
  int margin = cinfo.max_h_samp_factor * DCTSIZE;
  JDIMENSION left = (JDIMENSION)(x0 > margin ? x0 - margin : 0);
  JDIMENSION span = (JDIMENSION)((x1 + margin < width ? x1 + margin : width) - (int)left);
  jpeg_crop_scanline(&cinfo, &left, &span);
  row = (JSAMPROW)malloc((size_t)span * 3);
  owned = row;
  if (row == NULL) {
    jpeg_destroy_decompress(&cinfo);
    return -4;
  }
  if (y0 > 0) jpeg_skip_scanlines(&cinfo, (JDIMENSION)y0);
  int status = 0;
  size_t offset = (size_t)(x0 - (int)left) * 3, bytes = (size_t)(x1 - x0) * 3;
  for (int y = y0; y < y1; y++) {
    if (jpeg_read_scanlines(&cinfo, &row, 1) != 1) {
      status = -3;
      break;
    }
    memcpy(out + (long)(y - y0) * stride, row + offset, bytes);
  }
  if (err.pub.num_warnings) status = -3;
  jpeg_abort_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  free(row);
  return status;
}
