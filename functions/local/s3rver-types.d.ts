/**
 * `@20minutes/s3rver` is the maintained fork of s3rver (same API; it adds UploadPartCopy with
 * `x-amz-copy-source-range`, which batch aggregation uses). It ships no types: s3rver's own describe it.
 */
declare module '@20minutes/s3rver' {
  import S3rver from 's3rver';
  export default S3rver;
}
