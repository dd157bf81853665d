export * from './env';
export * from './limits';
export * from './routes';
export * from './table';
